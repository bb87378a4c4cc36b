// Package safe runs Gregor's background work (timers, loops, fetchers,
// ISR writers, compactions) so that a panic in it is logged once, with
// its stack, and ends only that piece of work instead of the process.
//
// Work run for a client request is recovered by the broker's dispatch,
// per connection; this package is for everything else.
package safe

import (
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/rs/zerolog"
)

// Run calls fn. If fn panics, the panic is recovered and logged at error
// level with the component's name, the panic value and the goroutine's
// stack, and Run returns true: the caller's component has stopped (its
// deferred cleanups ran as the panic unwound) and the process carries on.
func Run(log zerolog.Logger, component string, fn func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			log.Error().Str("component", component).Str("panic_value", fmt.Sprint(r)).
				Str("stack", string(debug.Stack())).Msg("background task panicked; it is stopped")
		}
	}()
	fn()
	return false
}

// Go runs fn under Run on a new goroutine counted in wg: wg.Add(1) before
// it starts, wg.Done() once it returns or panics.
func Go(wg *sync.WaitGroup, log zerolog.Logger, component string, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		Run(log, component, fn)
	}()
}
