// Package ctxsync has a mutual exclusion lock whose Lock honours a
// context, for waits that must end when an operation is cancelled.
package ctxsync

import (
	"context"
	"sync"
)

// Mutex is a mutual exclusion lock that can be acquired with a context.
// The zero value is an unlocked mutex. A Mutex must not be copied after
// first use.
type Mutex struct {
	once sync.Once
	ch   chan struct{} // holds one token while locked; made by once
}

// channel returns the lock channel, creating it on first use.
func (m *Mutex) channel() chan struct{} {
	m.once.Do(func() { m.ch = make(chan struct{}, 1) })
	return m.ch
}

// Lock acquires the mutex, waiting until it is free or ctx is done; in the
// latter case it returns ctx.Err() without the lock.
func (m *Mutex) Lock(ctx context.Context) error {
	ch := m.channel()
	select {
	case ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryLock acquires the mutex if it is free and reports whether it did.
func (m *Mutex) TryLock() bool {
	select {
	case m.channel() <- struct{}{}:
		return true
	default:
		return false
	}
}

// Unlock releases the mutex. Unlocking an unlocked mutex is a programming
// error, as for sync.Mutex: Unlock panics then.
func (m *Mutex) Unlock() {
	select {
	case <-m.channel():
	default:
		panic("ctxsync: unlock of unlocked Mutex")
	}
}
