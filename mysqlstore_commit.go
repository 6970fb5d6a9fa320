package whycache

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/whycache/whycache/logstore"
)

// myReqState is where a Commit call's request is; guarded by MySQLStore.mu.
type myReqState int

const (
	myReqQueued  myReqState = iota // in MySQLStore.queue
	myReqTaken                     // in a transaction in flight; the result will come
	myReqDropped                   // removed by Close; ErrClosed will come
)

// myCommitReq is one Commit call waiting for the committer.
type myCommitReq struct {
	ctx     context.Context
	records []logstore.Record // the caller's; not retained after done is sent
	bytes   int               // summed contents length
	state   myReqState        // guarded by MySQLStore.mu
	done    chan myCommitResult
}

// myCommitResult is the outcome of one request.
type myCommitResult struct {
	lastID uint64
	err    error
}

// Commit appends records to the log in one transaction and returns the id
// of the last one; the records get consecutive ids. Records with a
// SingleKey of 1..1024 bytes replace the older row with the same key;
// longer keys are stored as NULL.
//
// Concurrent calls share transactions (unless NoGroupCommit): a committer
// goroutine takes the waiting calls in arrival order, up to MaxBatchRows
// records and MaxBatchBytes bytes, and commits them together, each call
// getting its own consecutive ids. Deadlocks and lock wait timeouts are
// retried with backoff (MaxAttempts).
//
// Errors: ErrTooLarge (logstore's) for a record above
// Limits().MaxRecordSize, ErrClosed, the context's error, server errors;
// in all these cases nothing was committed. An error wrapping
// ErrCommitUnknown means the connection failed during COMMIT and the
// records may be in the log. If ctx ends while the call waits for its
// turn, it returns at once; once its records are part of a transaction in
// flight, it waits for that transaction's outcome (which is aborted when
// every call sharing it has given up). Commit with no records returns
// LatestUpdateID.
func (s *MySQLStore) commitRecords(ctx context.Context, records []logstore.Record) (uint64, error) {
	if err := s.myCheck(ctx); err != nil {
		return 0, err
	}
	if len(records) == 0 {
		return s.LatestUpdateID(ctx)
	}
	packet, err := s.myPacket(ctx)
	if err != nil {
		return 0, err
	}
	limit := myLimitsFor(packet).MaxRecordSize
	req := &myCommitReq{ctx: ctx, records: records, done: make(chan myCommitResult, 1)}
	for i, r := range records {
		if len(r.Contents) > limit {
			return 0, fmt.Errorf("whycache: mysqlstore: record %d of %d bytes is above %d: %w", i, len(r.Contents), limit, logstore.ErrTooLarge)
		}
		req.bytes += len(r.Contents)
	}
	if err := s.myEnsureMeta(ctx); err != nil {
		return 0, err
	}
	if s.opts.NoGroupCommit {
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			return 0, fmt.Errorf("whycache: mysqlstore: commit: %w", logstore.ErrClosed)
		}
		s.wg.Add(1) // Close waits for this transaction
		s.mu.Unlock()
		defer s.wg.Done()
		s.myRunBatch(ctx, []*myCommitReq{req})
		res := <-req.done
		return res.lastID, res.err
	}
	return s.myEnqueue(req)
}

// myEnqueue queues req for the committer, starting one if none runs, and
// waits for the outcome.
func (s *MySQLStore) myEnqueue(req *myCommitReq) (uint64, error) {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return 0, fmt.Errorf("whycache: mysqlstore: commit: %w", logstore.ErrClosed)
	}
	s.queue = append(s.queue, req)
	if !s.running {
		s.running = true
		s.wg.Add(1)
		go s.myCommitter()
	}
	s.mu.Unlock()
	if h := s.hookEnqueue; h != nil {
		h()
	}

	select {
	case res := <-req.done:
		return res.lastID, res.err
	case <-req.ctx.Done():
	}
	s.mu.Lock()
	if req.state == myReqQueued {
		for i, r := range s.queue {
			if r == req {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		return 0, fmt.Errorf("whycache: mysqlstore: commit: %w", req.ctx.Err())
	}
	s.mu.Unlock()
	res := <-req.done
	return res.lastID, res.err
}

// myCommitter runs transactions for queued requests until the queue is
// empty, then exits; myEnqueue starts a new one when needed.
func (s *MySQLStore) myCommitter() {
	defer s.wg.Done()
	for {
		// Let the callers just answered queue their next calls first, so
		// that the next transaction takes them too (without this, under
		// steady load the batches settle at half the callers).
		runtime.Gosched()
		s.mu.Lock()
		batch := s.myTakeLocked()
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
		s.myRunBatch(ctx, batch)
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// myTakeLocked removes the next batch from the queue: requests in arrival
// order within MaxBatchRows and MaxBatchBytes, at least one.
func (s *MySQLStore) myTakeLocked() []*myCommitReq {
	rows, bytes, n := 0, 0, 0
	for _, r := range s.queue {
		if n > 0 && (rows+len(r.records) > s.opts.MaxBatchRows || bytes+r.bytes > s.opts.MaxBatchBytes) {
			break
		}
		rows += len(r.records)
		bytes += r.bytes
		n++
	}
	batch := make([]*myCommitReq, n)
	copy(batch, s.queue[:n])
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	for _, r := range batch {
		r.state = myReqTaken
	}
	return batch
}
