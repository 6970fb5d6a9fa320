package mysqlstore

import (
	"sync"
	"time"
)

// holeClock decides when an id missing from a Python whycache table (a
// hole below the highest id) may be passed: a writer holding an
// AUTO_INCREMENT id in an open transaction commits it later, so a hole
// may still fill; a rolled-back insert or a row a newer single-key
// REPLACE removed never fills. The clock cannot tell them apart, so it
// waits: an id is resolved once a poll saw a higher id at least timeout
// ago.
//
// It keeps, for the polls of the last timeout, the highest id each saw
// and when: a mark (M, t) says that at t every id below M was taken.
// Marks older than timeout are folded into cleared: every id below
// cleared was taken at least timeout ago. Both grow together, so a
// store's clock costs a few words per poll of the last timeout.
//
// A holeClock is safe for concurrent use; the zero value is not ready
// (newHoleClock).
type holeClock struct {
	timeout time.Duration // never changes

	mu      sync.Mutex // guards the following
	cleared uint64     // ids below it are resolved
	marks   []holeMark // ascending in id and time, ids above cleared
}

// holeMark is the highest id one poll saw, and when.
type holeMark struct {
	id uint64
	at time.Time
}

// newHoleClock returns a clock that resolves a hole timeout after a poll
// first saw a higher id.
func newHoleClock(timeout time.Duration) *holeClock {
	return &holeClock{timeout: timeout}
}

// observe records that a poll finished at now saw maxID as the table's
// highest id. A maxID below what an earlier poll saw means the table lost
// its top (rows deleted, a restore, a TRUNCATE that restarted the ids):
// what the clock knew no longer holds and it starts over.
func (h *holeClock) observe(maxID uint64, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	top := h.cleared
	if n := len(h.marks); n > 0 {
		top = h.marks[n-1].id
	}
	switch {
	case maxID < top:
		h.cleared, h.marks = 0, h.marks[:0]
	case maxID == top:
		return
	}
	h.marks = append(h.marks, holeMark{id: maxID, at: now})
}

// resolved reports whether a hole at id may be passed at now: some poll
// saw an id above it at least timeout before now.
func (h *holeClock) resolved(id uint64, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for n < len(h.marks) && !now.Before(h.marks[n].at.Add(h.timeout)) {
		h.cleared = max(h.cleared, h.marks[n].id)
		n++
	}
	if n > 0 {
		h.marks = append(h.marks[:0], h.marks[n:]...)
	}
	return id < h.cleared
}
