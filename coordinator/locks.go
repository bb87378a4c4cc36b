package coordinator

import "sync"

// Lock order: Coordinator.loadMu, then a group's mu, then Coordinator.mu
// (DeleteGroup takes c.mu under the group's lock; nothing takes a group's
// lock under c.mu). TxnCoordinator likewise: loadMu, a txn's mu, then c.mu.
//
// Every lock is released by a defer, through locked where a
// function body cannot be one critical section: a panic in a request's
// handling (recovered per connection by the broker) must not leave a
// group or a transaction locked for good.

// locked runs fn with mu held, releasing it however fn returns.
func locked(mu sync.Locker, fn func()) {
	mu.Lock()
	defer mu.Unlock()
	fn()
}
