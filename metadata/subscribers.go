package metadata

import (
	"slices"
	"sync"

	"github.com/gregorbroker/gregor/internal/safe"
	"github.com/rs/zerolog"
)

// subscribers is the list of Subscribe callbacks of one store.
type subscribers struct {
	log    zerolog.Logger // where a subscriber's panic is logged; set before use
	mu     sync.Mutex
	next   uint64         // protected by mu
	list   []subscription // protected by mu; in subscription order
	closed bool           // protected by mu; set by closeAll
}

type subscription struct {
	id uint64
	fn func(Event)
}

// add registers fn and returns the function that removes it.
func (ss *subscribers) add(fn func(Event)) func() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return func() {}
	}
	id := ss.next
	ss.next++
	ss.list = append(ss.list, subscription{id: id, fn: fn})
	var once sync.Once
	return func() {
		once.Do(func() {
			ss.mu.Lock()
			defer ss.mu.Unlock()
			ss.list = slices.DeleteFunc(ss.list, func(s subscription) bool { return s.id == id })
		})
	}
}

// publish calls every subscriber with every event, in order; each call gets
// its own copy of the topic. A subscriber removed while publish runs may
// still be called for the events already under way. A subscriber that
// panics is logged (safe.Run) and misses only that event: the watch that
// publishes goes on.
func (ss *subscribers) publish(events []Event) {
	if len(events) == 0 {
		return
	}
	ss.mu.Lock()
	list := slices.Clone(ss.list)
	ss.mu.Unlock()
	for _, ev := range events {
		for _, sub := range list {
			e := Event{Kind: ev.Kind, Topic: copyTopic(ev.Topic), Partition: copyPartition(ev.Partition)}
			safe.Run(ss.log, "metadata subscriber", func() { sub.fn(e) })
		}
	}
}

// closeAll drops every subscriber and refuses new ones.
func (ss *subscribers) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	ss.list = nil
}
