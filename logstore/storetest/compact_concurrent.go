package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore"
)

const (
	// concurrentCommits caps the commits made during one Compact.
	concurrentCommits = 50
	// overlapWait bounds how long the CompactFunc waits for a concurrent
	// commit to land; a store that blocks commits during Compact is slower
	// to test but not wrong.
	overlapWait = 10 * time.Second
)

// testCompactConcurrentCommits commits through another handle while
// Compact runs: the new records get ids above the limit, are never offered
// to the CompactFunc and are all in the log afterwards.
func testCompactConcurrentCommits(t *testing.T, h Harness) {
	f := newFixture(t, h)
	writer := f.handle(t)
	recs := commit(t, f.s, 0, records(t, "o", 20)...)
	limit := recs[len(recs)-1].id

	started, firstCommit, stop := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var committed []stored
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-started
		for i := 0; i < concurrentCommits; i++ {
			c := []byte(fmt.Sprintf("committed during compaction %d", i))
			res, err := writer.Commit(context.Background(), logstore.LogID{}, []logstore.Record{{Contents: c}})
			last := res.Last
			if err != nil {
				werr = err
				return
			}
			committed = append(committed, stored{last, c})
			if i == 0 {
				close(firstCommit)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()

	var calls []stored
	fn := planFunc(t, recs, &calls)
	_, err := f.s.Compact(f.ctx, limit, 0, func(id uint64, c []byte) ([]byte, bool, error) {
		if len(calls) == 0 {
			close(started)
			select {
			case <-firstCommit:
			case <-time.After(overlapWait):
				t.Logf("no commit landed within %v of Compact calling its func", overlapWait)
			}
		}
		return fn(id, c)
	})
	if len(calls) == 0 {
		close(started)
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if werr != nil {
		t.Fatalf("concurrent Commit: %v", werr)
	}
	for _, c := range committed {
		if c.id <= limit {
			t.Errorf("record committed during Compact got id %d, not above the limit %d", c.id, limit)
		}
	}
	expectRecords(t, "records offered to the CompactFunc", calls, recs)
	want := append(planned(t, recs, len(recs)), committed...)
	expectRecords(t, "log after Compact with concurrent commits", readAll(t, f.s, 0, all), want)
}

// versions says which contents a reader may see for each record while a
// log is compacted by plan.
type versions struct {
	allowed  map[uint64][][]byte
	required map[uint64]bool // kept or replaced: never missing from a read
}

// newVersions describes compacting every record of recs by plan.
func newVersions(t *testing.T, recs []stored) *versions {
	v := &versions{allowed: make(map[uint64][][]byte), required: make(map[uint64]bool)}
	for i, r := range recs {
		v.allowed[r.id] = [][]byte{r.contents}
		switch plan(i) {
		case keep:
			v.required[r.id] = true
		case replace:
			v.required[r.id] = true
			v.allowed[r.id] = append(v.allowed[r.id], replacement(t, r))
		}
	}
	return v
}

// check returns an error unless pass, read from low on, holds only allowed
// versions and every required record.
func (v *versions) check(pass []stored, low uint64) error {
	got := make(map[uint64]bool)
	for _, r := range pass {
		got[r.id] = true
		ok := false
		for _, a := range v.allowed[r.id] {
			ok = ok || bytes.Equal(a, r.contents)
		}
		if !ok {
			return fmt.Errorf("record %d read as %q, neither original nor replacement", r.id, short(r.contents))
		}
	}
	for id := range v.required {
		if id >= low && !got[id] {
			return fmt.Errorf("record %d missing from a read from %d", id, low)
		}
	}
	return nil
}

// testCompactReaders replays the log from several positions before, during
// and after a Compact: readers only ever see each record's original or
// replacement, never miss a kept record, and see the planned log after.
func testCompactReaders(t *testing.T, h Harness) {
	f := newFixture(t, h)
	reader := f.handle(t)
	var recs []stored
	for i := 0; i < 10; i++ {
		var prev uint64
		if len(recs) > 0 {
			prev = recs[len(recs)-1].id
		}
		recs = append(recs, commit(t, f.s, prev, records(t, fmt.Sprintf("batch %d", i), 3)...)...)
	}
	v := newVersions(t, recs)
	positions := []uint64{0, recs[5].id, recs[16].id, recs[len(recs)-1].id}
	replay := func(ctx context.Context, who string) {
		for _, p := range positions {
			pass, err := read(ctx, reader, p, all)
			if err == nil {
				err = v.check(pass, p)
			}
			if err != nil {
				t.Errorf("%s, replay from %d: %v", who, p, err)
			}
		}
	}
	replay(f.ctx, "before Compact")

	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for finished := false; !finished; {
				select {
				case <-done:
					finished = true
				default:
				}
				replay(context.Background(), fmt.Sprintf("reader %d during Compact", r))
			}
		}()
	}
	var calls []stored
	fn := planFunc(t, recs, &calls)
	_, err := f.s.Compact(f.ctx, recs[len(recs)-1].id, 0, func(id uint64, c []byte) ([]byte, bool, error) {
		replay(f.ctx, fmt.Sprintf("inside CompactFunc for record %d", id))
		return fn(id, c)
	})
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	want := planned(t, recs, len(recs))
	for _, p := range positions {
		expectRecords(t, fmt.Sprintf("replay from %d after Compact", p), readAll(t, reader, p, all), filter(want, p, all))
	}
}
