package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/whycache/whycache/logstore"
)

const (
	concurrentWriters = 16
	// commitsPerWriter is how many batches each writer commits.
	commitsPerWriter = 12
)

// batchResult is what one writer's Commit returned.
type batchResult struct {
	last uint64
	recs []logstore.Record
}

// testConcurrentCommits runs 16 writers on two handles committing batches
// of 1 to 5 records while a poller on a third handle tails the log with
// ReadUpdates(last+1, LatestUpdateID). Every batch must get its own
// consecutive ids, and the poller must see every committed record exactly
// once, in ascending order, with nothing skipped.
func testConcurrentCommits(t *testing.T, h Harness) {
	f := newFixture(t, h)
	handles := []logstore.Store{f.s, f.handle(t)}
	poll := f.handle(t)

	results := make([][]batchResult, concurrentWriters)
	var writers sync.WaitGroup
	for w := 0; w < concurrentWriters; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			s := handles[w%len(handles)]
			for i := 0; i < commitsPerWriter; i++ {
				recs := make([]logstore.Record, 1+(w+i)%5)
				for j := range recs {
					recs[j].Contents = []byte(fmt.Sprintf("writer %d batch %d record %d", w, i, j))
				}
				res, err := s.Commit(context.Background(), logstore.LogID{}, recs)
				last := res.Last
				if err != nil {
					t.Errorf("writer %d: Commit: %v", w, err)
					return
				}
				results[w] = append(results[w], batchResult{last, recs})
			}
		}()
	}
	done := make(chan struct{})
	go func() { writers.Wait(); close(done) }()

	seen, err := tail(poll, done)
	if err != nil {
		t.Errorf("poller: %v", err)
	}
	<-done

	want := make(map[uint64][]byte)
	for w, rs := range results {
		for _, r := range rs {
			n := uint64(len(r.recs))
			if r.last < n {
				t.Fatalf("writer %d: Commit of %d records returned last id %d", w, n, r.last)
			}
			for j, rec := range r.recs {
				id := r.last - n + 1 + uint64(j)
				if _, dup := want[id]; dup {
					t.Fatalf("id %d returned to two commits", id)
				}
				want[id] = rec.Contents
			}
		}
	}
	checkSeen(t, "poller", seen, want)
	final := make(map[uint64][]byte)
	for _, r := range readAll(t, f.s, 0, all) {
		final[r.id] = r.contents
	}
	checkSeen(t, "final read", final, want)
}

// tail polls s like a follower until done is closed, then once more, and
// returns every record it saw. It fails on a record seen twice or out of
// order.
func tail(s logstore.Store, done <-chan struct{}) (map[uint64][]byte, error) {
	ctx := context.Background()
	seen := make(map[uint64][]byte)
	var last uint64
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
			runtime.Gosched()
		}
		high, err := s.LatestUpdateID(ctx)
		if err != nil {
			return seen, err
		}
		if high < last {
			return seen, fmt.Errorf("LatestUpdateID went back from %d to %d", last, high)
		}
		recs, err := read(ctx, s, last+1, high)
		if err != nil {
			return seen, err
		}
		for _, r := range recs {
			if _, dup := seen[r.id]; dup {
				return seen, fmt.Errorf("record %d seen twice", r.id)
			}
			seen[r.id] = r.contents
		}
		last = high
	}
	return seen, nil
}

// checkSeen fails the test unless got holds exactly the records of want.
func checkSeen(t *testing.T, who string, got, want map[uint64][]byte) {
	t.Helper()
	for id, c := range want {
		g, ok := got[id]
		switch {
		case !ok:
			t.Errorf("%s: record %d (%q) skipped", who, id, c)
		case string(g) != string(c):
			t.Errorf("%s: record %d = %q, committed %q", who, id, g, c)
		}
	}
	for id, c := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: record %d (%q) was never committed", who, id, c)
		}
	}
}
