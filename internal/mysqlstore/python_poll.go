package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/whycache/whycache/logstore"
)

// pyPoll is Poll in Python mode. One statement (one read view) reads the
// table's highest id and up to limit+1 rows after req.After.ID. The rows
// are delivered in id order up to the first unresolved hole: an id below
// a row that is missing and that no poll of this store saw a higher id
// above for HoleTimeout yet (holeClock). Latest is the last id delivered
// (or After.ID), so a reader taking it as its position passes no hole
// that may still fill; More is set when the page ended before the
// highest id with no hole in the way. Verdict is Ahead when After.ID is
// above the highest id (the table lost records the reader applied);
// Mismatch, with Detail, when a row was committed in a hole this store
// passed before (passedHoles; the check runs once per HoleTimeout): the
// readers that passed it lack that record; else Match: positions are
// checked by id only (nonces are 0).
func (s *Store) pyPoll(ctx context.Context, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	if err := s.pyReady(ctx, "poll"); err != nil {
		return logstore.PollResult{}, err
	}
	id, err := s.pyIdentity(ctx)
	if err != nil {
		return logstore.PollResult{}, err
	}
	limit := s.pollLimit()
	if req.Max > 0 && req.Max < limit {
		limit = req.Max
	}
	if s.py.passed.needSeed(req.After.ID) {
		if err := s.pySeedPassed(ctx, min(req.After.ID, math.MaxInt64), time.Now()); err != nil {
			return logstore.PollResult{}, err
		}
	}
	if err := s.pyLateRow(ctx, time.Now()); err != nil {
		return logstore.PollResult{}, err
	}
	after := logstore.Position{ID: req.After.ID} // nonces are unknown here
	p, err := s.pyPollQuery(ctx, after.ID, limit)
	if err != nil {
		return logstore.PollResult{}, err
	}
	now := time.Now() // after the read view: a conservative time for the marks
	s.py.holes.observe(p.next, now)
	res := logstore.PollResult{Info: logstore.Info{ID: id}, Next: req.After}
	res.Verdict = logstore.Judge(after, logstore.Position{ID: p.next}, 0, false, 0)
	if late := s.py.passed.judge(after.ID); late != 0 && res.Verdict == logstore.VerdictMatch {
		res.Verdict = logstore.VerdictMismatch
		res.Detail = fmt.Sprintf("record %d of %s was committed after this reader passed its id as a hole (an insert held open longer than HoleTimeout %s after a later id was seen)",
			late, s.table, s.py.holes.timeout)
	}
	if res.Verdict == logstore.VerdictAhead || res.Verdict == logstore.VerdictMismatch {
		res.Latest = logstore.Position{ID: p.next}
		return res, nil
	}
	s.pollAdapt(p, limit)
	// Deliver up to the first unresolved hole.
	n, expect, hole := min(len(p.ids), limit), after.ID+1, false
	for i := 0; i < n; i++ {
		if p.ids[i] > expect && !s.py.holes.resolved(p.ids[i]-1, now) {
			n, hole = i, true
			break
		}
		expect = p.ids[i] + 1
	}
	res.Latest = after
	if n > 0 {
		res.Latest = logstore.Position{ID: p.ids[n-1]}
	}
	res.More = !hole && (p.cut || p.got > limit)
	if p.next > res.Latest.ID {
		res.HeldBack = p.next // behind a hole, or beyond the page
	}
	// A hole below a record is recorded as passed once the record is
	// delivered (passedHoles).
	expect = after.ID + 1
	for i := range n {
		start := 0
		if i > 0 {
			start = p.ends[i-1]
		}
		c := p.data[start:p.ends[i]:p.ends[i]]
		if isGoFramed(c) {
			return res, s.errGoRecord("poll", p.ids[i])
		}
		if err := fn(logstore.Entry{ID: p.ids[i], Contents: c}); err != nil {
			return res, err
		}
		if p.ids[i] > expect {
			s.py.passed.add(expect, p.ids[i]-1, now)
		}
		expect = p.ids[i] + 1
		res.Next = logstore.Position{ID: p.ids[i]}
	}
	return res, nil
}

// pyPollQuery runs the Python Poll statement for the rows after after, at
// most limit+1 of them. The page's next field holds the highest id.
func (s *Store) pyPollQuery(ctx context.Context, after uint64, limit int) (*pollPage, error) {
	st, err := s.prepared(ctx, s.rdb, s.py.poll)
	if err != nil {
		return nil, s.pollError(ctx, s.rdb, err)
	}
	rows, err := st.QueryContext(ctx, min(after, math.MaxInt64), limit+1)
	if err != nil {
		return nil, s.pollError(ctx, s.rdb, err)
	}
	p := &pollPage{}
	err = func() error {
		defer rows.Close()
		for rows.Next() {
			var kind int
			var id uint64
			var blob sql.RawBytes
			if err := rows.Scan(&kind, &id, &blob); err != nil {
				return fmt.Errorf("mysqlstore: poll: %w", err)
			}
			if kind == 0 {
				p.metaFound, p.next = true, id
				continue
			}
			if err := p.add(id, 0, blob, after, s.opts.PageBytes); err != nil {
				return err
			}
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, s.pollError(ctx, s.rdb, err)
	}
	return p, nil
}

// pyLatest returns the table's highest id (0 for an empty table).
func (s *Store) pyLatest(ctx context.Context) (uint64, error) {
	if err := s.pyReady(ctx, "latest update id"); err != nil {
		return 0, err
	}
	var latest uint64
	if err := s.rdb.QueryRowContext(ctx, s.q.maxID).Scan(&latest); err != nil {
		return 0, fmt.Errorf("mysqlstore: latest update id: %w", err)
	}
	return latest, nil
}

// pyInfo returns the derived identity and horizon 0 (a Python table keeps
// no horizon).
func (s *Store) pyInfo(ctx context.Context) (logstore.Info, error) {
	if err := s.pyReady(ctx, "info"); err != nil {
		return logstore.Info{}, err
	}
	id, err := s.pyIdentity(ctx)
	return logstore.Info{ID: id}, err
}

// pyFramed wraps a reader's callback so that a record in the Go framing
// stops the read with ErrCorrupt.
func (s *Store) pyFramed(op string, fn func(id uint64, contents []byte) error) func(uint64, []byte) error {
	return func(id uint64, c []byte) error {
		if isGoFramed(c) {
			return s.errGoRecord(op, id)
		}
		return fn(id, c)
	}
}

// pyCheck verifies every row of the table: each must be a record in the
// Python framing.
func (s *Store) pyCheck(ctx context.Context) error {
	if err := s.pyReady(ctx, "check"); err != nil {
		return err
	}
	return s.readRange(ctx, 1, math.MaxInt64, s.pyFramed("check", func(id uint64, c []byte) error {
		if _, err := logstore.RecordItemCount(c); err != nil {
			return fmt.Errorf("mysqlstore: check: record %d of %s: %w", id, s.table, err)
		}
		return nil
	}))
}
