package mysqlstore

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/whycache/whycache/logstore"
)

// reqState is where a Commit call's request is; guarded by Store.mu.
type reqState int

const (
	reqQueued  reqState = iota // in Store.queue
	reqTaken                   // in a transaction in flight; the result will come
	reqDropped                 // removed by Close; ErrClosed will come
)

// commitReq is one Commit call waiting for the committer.
type commitReq struct {
	ctx     context.Context
	expect  logstore.LogID    // the identity the caller expects; zero for any
	records []logstore.Record // the caller's; not retained after done is sent
	bytes   int               // summed contents length
	state   reqState          // guarded by Store.mu
	done    chan commitResult
}

// commitResult is the outcome of one request.
type commitResult struct {
	c   logstore.Committed
	err error
}

// Commit appends records to the log in one transaction under a new nonce
// and returns their ids and the nonce; the records get consecutive ids.
// Records with a SingleKey of 1..1024 bytes replace the older row with the
// same key; longer keys are stored as NULL. If expect is not the zero
// LogID, the transaction commits only if the log has that identity
// (checked in the transaction's first statement); otherwise Commit fails
// with an error wrapping logstore.ErrLogMismatch.
//
// Concurrent calls share transactions (unless NoGroupCommit): a committer
// goroutine takes the waiting calls in arrival order, up to MaxBatchRows
// records and MaxBatchBytes bytes and up to the first call that expects
// another identity than an earlier one, and commits them together, each
// call getting its own consecutive ids and the transaction's nonce.
// Deadlocks and lock wait timeouts are retried with backoff (MaxAttempts).
//
// Errors: ErrTooLarge (logstore's) for a record above
// Limits().MaxRecordSize, ErrLogMismatch, ErrNoLog when the tables or the
// meta row are missing (Commit never creates them; run CreateTable),
// ErrClosed, the context's error, server errors; in all these cases
// nothing was committed. An error wrapping ErrCommitUnknown means the
// connection failed during COMMIT and the records may be in the log. If
// ctx ends while the call waits for its turn, it returns at once; once its
// records are part of a transaction in flight, it waits for that
// transaction's outcome (which is aborted when every call sharing it has
// given up). Commit with no records checks expect and returns First = Last
// = LatestUpdateID and nonce 0.
func (s *Store) Commit(ctx context.Context, expect logstore.LogID, records []logstore.Record) (logstore.Committed, error) {
	if err := s.checkUsable(ctx); err != nil {
		return logstore.Committed{}, err
	}
	if s.py != nil {
		return s.pyCommit(ctx, expect, records)
	}
	if len(records) == 0 {
		return s.commitNothing(ctx, expect)
	}
	packet, err := s.serverPacket(ctx)
	if err != nil {
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %w", err)
	}
	limit := limitsFor(packet).MaxRecordSize
	req := &commitReq{ctx: ctx, expect: expect, records: records, done: make(chan commitResult, 1)}
	for i, r := range records {
		if len(r.Contents) > limit {
			return logstore.Committed{}, fmt.Errorf("mysqlstore: record %d of %d bytes is above %d: %w", i, len(r.Contents), limit, logstore.ErrTooLarge)
		}
		req.bytes += len(r.Contents)
	}
	if s.opts.NoGroupCommit {
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %w", logstore.ErrClosed)
		}
		s.wg.Add(1) // Close waits for this transaction
		s.mu.Unlock()
		defer s.wg.Done()
		s.runBatch(ctx, []*commitReq{req})
		res := <-req.done
		return res.c, res.err
	}
	return s.enqueue(req)
}

// commitNothing is Commit without records: it reads the identity and
// the latest id.
func (s *Store) commitNothing(ctx context.Context, expect logstore.LogID) (logstore.Committed, error) {
	var id []byte
	var next uint64
	err := s.db.QueryRowContext(ctx, s.q.identity).Scan(&id, &next)
	switch {
	case isMissing(err):
		return logstore.Committed{}, s.noLog(ctx, s.db, "commit", err)
	case err != nil:
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %w", err)
	case next == 0 || len(id) != len(expect):
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: meta row of %s damaged (next_id %d, log id of %d bytes): %w", s.table, next, len(id), logstore.ErrCorrupt)
	}
	if expect != (logstore.LogID{}) && string(id) != string(expect[:]) {
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: log %x, expected %x: %w", id, expect, logstore.ErrLogMismatch)
	}
	return logstore.Committed{First: next - 1, Last: next - 1}, nil
}

// enqueue queues req for the committer, starting one if none runs, and
// waits for the outcome.
func (s *Store) enqueue(req *commitReq) (logstore.Committed, error) {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %w", logstore.ErrClosed)
	}
	s.queue = append(s.queue, req)
	if !s.running {
		s.running = true
		s.wg.Add(1)
		go s.committer()
	}
	s.mu.Unlock()
	if h := s.hookEnqueue; h != nil {
		h()
	}

	select {
	case res := <-req.done:
		return res.c, res.err
	case <-req.ctx.Done():
	}
	s.mu.Lock()
	if req.state == reqQueued {
		for i, r := range s.queue {
			if r == req {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %w", req.ctx.Err())
	}
	s.mu.Unlock()
	res := <-req.done
	return res.c, res.err
}

// committer runs transactions for queued requests until the queue is
// empty, then exits; enqueue starts a new one when needed.
func (s *Store) committer() {
	defer s.wg.Done()
	for {
		// Let the callers just answered queue their next calls first, so
		// that the next transaction takes them too (without this, under
		// steady load the batches settle at half the callers).
		runtime.Gosched()
		s.mu.Lock()
		batch := s.takeLocked()
		if len(batch) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		// The transaction runs until every caller in it has given up.
		ctx, cancel := context.WithCancel(context.Background())
		var live atomic.Int64
		live.Store(int64(len(batch)))
		stops := make([]func() bool, len(batch))
		for i, r := range batch {
			stops[i] = context.AfterFunc(r.ctx, func() {
				if live.Add(-1) == 0 {
					cancel()
				}
			})
		}
		s.runBatch(ctx, batch)
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// takeLocked removes the next batch from the queue: requests in arrival
// order within MaxBatchRows and MaxBatchBytes, at least one, and none
// after a request that expects another log identity than an earlier one
// (the transaction checks one identity).
func (s *Store) takeLocked() []*commitReq {
	rows, bytes, n := 0, 0, 0
	var expect logstore.LogID
	for _, r := range s.queue {
		if n > 0 && (rows+len(r.records) > s.opts.MaxBatchRows || bytes+r.bytes > s.opts.MaxBatchBytes) {
			break
		}
		if r.expect != (logstore.LogID{}) {
			if expect != (logstore.LogID{}) && r.expect != expect {
				break
			}
			expect = r.expect
		}
		rows += len(r.records)
		bytes += r.bytes
		n++
	}
	batch := make([]*commitReq, n)
	copy(batch, s.queue[:n])
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	for _, r := range batch {
		r.state = reqTaken
	}
	return batch
}
