package main

// The line Kafka logs when its broker starts serving, which container
// tooling waits for: testcontainers' KafkaContainer waits for a log line
// matching ".*Transitioning from RECOVERY to RUNNING.*".

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/gregorbroker/gregor/broker"
)

// runningLine is Kafka's message, word for word.
const runningLine = "Transitioning from RECOVERY to RUNNING"

// readyPoll is how often the announcer asks the broker whether it is ready.
const readyPoll = 10 * time.Millisecond

// runningAnnouncer logs runningLine once its broker is ready (Ready: it
// listens and its metadata is readable), at no level so that it is
// written whatever --log-level says. Its goroutine is owned by serve,
// which stops it before closing the broker.
type runningAnnouncer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// announceRunning starts the announcer of b.
func announceRunning(ctx context.Context, b *broker.Broker, log zerolog.Logger) *runningAnnouncer {
	ctx, cancel := context.WithCancel(ctx)
	r := &runningAnnouncer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(readyPoll)
		defer t.Stop()
		for {
			if b.Ready() == nil {
				// Whatever the log level: tooling waits for this line.
				log.WithLevel(zerolog.NoLevel).Msg(runningLine)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return r
}

// stop ends the announcer and waits for it.
func (r *runningAnnouncer) stop() {
	r.cancel()
	<-r.done
}
