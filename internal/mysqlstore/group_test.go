package mysqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

// committedCall is one successful Commit call: its records and the last
// id it returned.
type committedCall struct {
	last uint64
	recs []logstore.Record
}

// checkLog reads the whole log and checks that every committed call's
// records sit at consecutive ids ending at its last id, that no id was
// given twice, and that the log holds nothing else. It returns the number
// of records.
func checkLog(t *testing.T, s logstore.Store, calls []committedCall) int {
	t.Helper()
	ids, contents := readAll(t, s, 1, ^uint64(0))
	byID := make(map[uint64][]byte, len(ids))
	for i, id := range ids {
		byID[id] = contents[i]
	}
	owner := make(map[uint64]int)
	total := 0
	for ci, c := range calls {
		n := uint64(len(c.recs))
		for i, r := range c.recs {
			id := c.last - n + 1 + uint64(i)
			if prev, dup := owner[id]; dup {
				t.Fatalf("id %d given to calls %d and %d", id, prev, ci)
			}
			owner[id] = ci
			if got, ok := byID[id]; !ok || !bytes.Equal(got, r.Contents) {
				t.Fatalf("call %d record %d: id %d holds %q (present %v), want %q", ci, i, id, got, ok, r.Contents)
			}
			total++
		}
	}
	if len(ids) != total {
		t.Fatalf("log holds %d records, the calls committed %d", len(ids), total)
	}
	return total
}

func TestGroupCommit(t *testing.T) {
	mysqltest.DSN(t) // skip once, not in every subtest
	const goroutines, perGoroutine = 64, 8
	for _, tc := range []struct {
		name        string
		opts        Options
		minSize     int // record sizes
		maxSize     int
		stmtBudget  int // the statement byte budget the options imply
		wantGrouped bool
	}{
		{"row and byte caps", Options{MaxStatementRows: 7, MaxStatementBytes: 600, MaxBatchRows: 100}, 10, 150, 600, true},
		{"small max packet", Options{MaxAllowedPacket: 8192}, 200, 1500, 8192 - stmtOverhead, true},
		{"no group commit", Options{NoGroupCommit: true, MaxStatementRows: 2}, 10, 100, 1 << 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := testStore(t, tc.opts)
			ctx := context.Background()
			var mu sync.Mutex // guards the following
			var stmts, maxRows, maxBytes, txs, maxRequests int
			s.hookStatement = func(rows, bytes int) {
				mu.Lock()
				defer mu.Unlock()
				stmts++
				maxRows = max(maxRows, rows)
				if rows > 1 {
					maxBytes = max(maxBytes, bytes)
				}
			}
			s.hookBatch = func(requests, rows int) {
				mu.Lock()
				defer mu.Unlock()
				txs++
				maxRequests = max(maxRequests, requests)
			}
			// Hold the first transaction until every goroutine has queued
			// its first call, so the next transaction must group them.
			var enqueued atomic.Int64
			allQueued := make(chan struct{})
			s.hookEnqueue = func() {
				if enqueued.Add(1) == goroutines {
					close(allQueued)
				}
			}
			var first sync.Once
			s.hookBeforeCommit = func(context.Context, uint64, uint64, []*commitReq) error {
				first.Do(func() {
					if !tc.opts.NoGroupCommit {
						<-allQueued
					}
				})
				return nil
			}

			results := make([][]committedCall, goroutines)
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 1))
					for i := range perGoroutine {
						recs := make([]logstore.Record, 1+rng.IntN(3))
						for j := range recs {
							tag := fmt.Sprintf("g%d-c%d-r%d-", g, i, j)
							c := append([]byte(tag), bytes.Repeat([]byte{byte(rng.Uint32())}, tc.minSize+rng.IntN(tc.maxSize-tc.minSize))...)
							recs[j] = logstore.Record{Contents: c}
							if j%2 == 0 {
								recs[j].SingleKey = []byte(tag) // unique: replaces nothing
							}
						}
						last, err := commitLast(ctx, s, recs)
						if err != nil {
							errs <- fmt.Errorf("goroutine %d commit %d: %w", g, i, err)
							return
						}
						results[g] = append(results[g], committedCall{last, recs})
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			var calls []committedCall
			for _, r := range results {
				calls = append(calls, r...)
			}
			total := checkLog(t, s, calls)
			if last, err := s.LatestUpdateID(ctx); err != nil || last != uint64(total) {
				t.Errorf("LatestUpdateID = %d, %v; want %d (ids without gaps)", last, err, total)
			}

			mu.Lock()
			defer mu.Unlock()
			t.Logf("%d calls, %d records: %d transactions (largest %d calls), %d statements (largest %d rows, %d bytes)",
				len(calls), total, txs, maxRequests, stmts, maxRows, maxBytes)
			if maxRows > s.opts.MaxStatementRows || maxBytes > tc.stmtBudget {
				t.Errorf("a statement had %d rows and %d bytes, caps %d and %d", maxRows, maxBytes, s.opts.MaxStatementRows, tc.stmtBudget)
			}
			if stmts <= txs {
				t.Errorf("%d statements in %d transactions: nothing was split", stmts, txs)
			}
			if tc.wantGrouped {
				if maxRequests < 2 || txs >= len(calls) {
					t.Errorf("%d transactions for %d calls, largest %d calls: no group commit", txs, len(calls), maxRequests)
				}
			} else if txs != len(calls) || maxRequests != 1 {
				t.Errorf("%d transactions for %d calls, largest %d calls; want one each", txs, len(calls), maxRequests)
			}
		})
	}
}

func TestGroupCommitCancel(t *testing.T) {
	// A call whose context ends while it waits in the queue returns at
	// once and commits nothing; the others in the queue are unaffected.
	s, _ := testStore(t, Options{})
	ctx := context.Background()
	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.hookBeforeCommit = func(context.Context, uint64, uint64, []*commitReq) error {
		once.Do(func() { close(hold); <-release })
		return nil
	}
	queued := make(chan struct{}, 4)
	s.hookEnqueue = func() { queued <- struct{}{} }

	type result struct {
		id  uint64
		err error
	}
	first := make(chan result, 1)
	go func() {
		id, err := commitLast(ctx, s, []logstore.Record{{Contents: []byte("first")}})
		first <- result{id, err}
	}()
	<-queued
	<-hold
	cctx, cancel := context.WithCancel(ctx)
	cancelled, kept := make(chan result, 1), make(chan result, 1)
	go func() {
		id, err := commitLast(cctx, s, []logstore.Record{{Contents: []byte("cancelled")}})
		cancelled <- result{id, err}
	}()
	go func() {
		id, err := commitLast(ctx, s, []logstore.Record{{Contents: []byte("kept")}})
		kept <- result{id, err}
	}()
	<-queued
	<-queued
	cancel()
	if r := <-cancelled; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled call returned %d, %v; want context.Canceled", r.id, r.err)
	}
	close(release)
	if r := <-first; r.err != nil || r.id != 1 {
		t.Fatalf("first call = %d, %v; want 1", r.id, r.err)
	}
	if r := <-kept; r.err != nil || r.id != 2 {
		t.Fatalf("kept call = %d, %v; want 2", r.id, r.err)
	}
	if _, got := readAll(t, s, 1, 100); fmt.Sprintf("%s", got) != "[first kept]" {
		t.Errorf("log holds %q, want [first kept]", got)
	}
}
