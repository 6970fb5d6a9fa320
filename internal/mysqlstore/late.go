package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of passedHoles: the ranges it keeps, for how long (in multiples
// of HoleTimeout), and how many ids below its first reader's position a
// store looks at for the holes passed before it existed (seed).
const (
	maxPassedRanges  = 1024
	passedKeepFactor = 60
	seedWindow       = 1 << 16
)

// passedHoles remembers the holes a Python-mode store passed (ids missing
// when a poll delivered the records above them; see holeClock), so that a
// row committed in one of them later — an insert held open longer than
// HoleTimeout after a later id was seen — is found instead of being
// missing forever from every state that passed it. A check (lateQuery)
// runs once per HoleTimeout while holes are kept: a row found in a passed
// hole makes the next poll's verdict a mismatch, so the reader rebuilds
// its state.
//
// It keeps at most maxPassedRanges ranges (the latest), each for
// passedKeepFactor × HoleTimeout after it was passed: an insert open
// longer than that, or in a range let go for room, is not seen. The holes
// a reader passed before this store existed (an earlier process) are
// taken at the store's first poll by a position: every id missing from
// the seedWindow ids below it is a hole that never fills (a rolled-back
// insert, a row a REPLACE or a rewrite removed) or an insert still open,
// which the reader cannot have applied, so a row appearing there later is
// one it lacks (seed).
//
// A passedHoles is safe for concurrent use.
type passedHoles struct {
	mu        sync.Mutex // guards the following
	seeded    bool       // seed succeeded (or a poll from id 0 made it needless)
	ranges    []passedRange
	lastCheck time.Time
	// late is the lowest row found in a passed hole, 0 for none: the
	// polls of a reader past it are a mismatch until a poll from at or
	// below it (the reader starting over) clears it.
	late uint64
}

// passedRange is the ids lo..hi (inclusive), passed at at.
type passedRange struct {
	lo, hi uint64
	at     time.Time
}

// add records that a poll at now passed the ids lo..hi.
func (h *passedHoles) add(lo, hi uint64, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ranges) == 0 {
		h.lastCheck = now // the first check comes one period after the first hole
	}
	if n := len(h.ranges) - maxPassedRanges + 1; n > 0 {
		h.ranges = append(h.ranges[:0], h.ranges[n:]...)
	}
	h.ranges = append(h.ranges, passedRange{lo: lo, hi: hi, at: now})
}

// due returns the ranges to check at now, once every period while some
// are kept, after dropping those passed more than keep ago; nil when no
// check is due.
func (h *passedHoles) due(now time.Time, period, keep time.Duration) []passedRange {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for n < len(h.ranges) && now.Sub(h.ranges[n].at) > keep {
		n++
	}
	h.ranges = append(h.ranges[:0], h.ranges[n:]...)
	if len(h.ranges) == 0 || now.Sub(h.lastCheck) < period {
		return nil
	}
	h.lastCheck = now
	return append([]passedRange(nil), h.ranges...)
}

// found records that the row id was found in a passed hole: the ranges
// are dropped (the readers start over, and record the holes they pass
// again) and id is kept as late.
func (h *passedHoles) found(id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ranges = h.ranges[:0]
	if h.late == 0 || id < h.late {
		h.late = id
	}
}

// judge returns the late row a reader at after passed (0 when it passed
// none), and clears it for a reader at or below it, which reads it in
// order.
func (h *passedHoles) judge(after uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.late != 0 && after <= h.late {
		h.late = 0
	}
	return h.late
}

// lateQuery returns the statement that finds the lowest row in ranges of
// table t (quoted): the ids are numbers written into the text, since the
// number of ranges varies.
func lateQuery(t string, ranges []passedRange) string {
	var b strings.Builder
	b.WriteString("SELECT id FROM " + t + " WHERE ")
	for i, r := range ranges {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("id BETWEEN " + strconv.FormatUint(r.lo, 10) + " AND " + strconv.FormatUint(r.hi, 10))
	}
	b.WriteString(" ORDER BY id LIMIT 1")
	return b.String()
}

// pyLateRow runs the passed-holes check when it is due, and records a row
// it finds in a hole the store passed (found).
func (s *Store) pyLateRow(ctx context.Context, now time.Time) error {
	period := s.py.holes.timeout
	ranges := s.py.passed.due(now, period, passedKeepFactor*period)
	if ranges == nil {
		return nil
	}
	var id uint64
	err := s.rdb.QueryRowContext(ctx, lateQuery("`"+s.table+"`", ranges)).Scan(&id)
	switch {
	case err == nil:
		s.py.passed.found(id)
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return nil
	}
	return s.pollError(ctx, s.rdb, err)
}

// needSeed reports whether the store's first poll by a position must look
// for the holes below it (seed): until a seed succeeded or a poll from id
// 0 made it needless (seeded).
func (h *passedHoles) needSeed(after uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if after == 0 {
		h.seeded = true
	}
	return !h.seeded
}

// seedDone marks the seed done.
func (h *passedHoles) seedDone() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seeded = true
}

// pySeedPassed records, as passed at now, the ids missing from the
// seedWindow ids at or below after (see passedHoles): one statement, at
// the first poll of a store by a reader at after > 0, and at the next
// ones until it succeeded.
func (s *Store) pySeedPassed(ctx context.Context, after uint64, now time.Time) error {
	lo := uint64(1)
	if after > seedWindow {
		lo = after - seedWindow + 1
	}
	rows, err := s.rdb.QueryContext(ctx, s.py.seed, lo, after)
	if err != nil {
		return s.pollError(ctx, s.rdb, err)
	}
	defer rows.Close()
	expect := lo
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return s.pollError(ctx, s.rdb, err)
		}
		if id > expect {
			s.py.passed.add(expect, id-1, now)
		}
		expect = id + 1
	}
	if err := rows.Err(); err != nil {
		return s.pollError(ctx, s.rdb, err)
	}
	if expect <= after {
		s.py.passed.add(expect, after, now)
	}
	s.py.passed.seedDone()
	return nil
}
