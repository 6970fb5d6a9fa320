package storetest

import (
	"errors"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// testEmptyLog checks a fresh log: no records, a stable non-zero identity
// seen alike by every handle, horizon 0.
func testEmptyLog(t *testing.T, h Harness) {
	f := newFixture(t, h)
	if id := latest(t, f.s); id != 0 {
		t.Errorf("LatestUpdateID = %d, want 0", id)
	}
	expectRecords(t, "ReadUpdates(0, max)", readAll(t, f.s, 0, all), nil)
	first := info(t, f.s)
	if first.ID == (logstore.LogID{}) {
		t.Errorf("Info.ID is zero")
	}
	if first.Horizon != 0 {
		t.Errorf("Info.Horizon = %d, want 0", first.Horizon)
	}
	if again := info(t, f.s); again != first {
		t.Errorf("second Info = %+v, first %+v", again, first)
	}
	other := f.handle(t)
	if got := info(t, other); got != first {
		t.Errorf("Info on another handle = %+v, want %+v", got, first)
	}
	if id := latest(t, other); id != 0 {
		t.Errorf("LatestUpdateID on another handle = %d, want 0", id)
	}
}

// testCommitRead commits batches of several sizes and reads them back whole
// and by ranges, through the committing handle and another one.
func testCommitRead(t *testing.T, h Harness) {
	f := newFixture(t, h)
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	batches := [][]logstore.Record{
		records(t, "a", 1),
		records(t, "b", 3),
		{{Contents: binary}},
		records(t, "c", 5),
		records(t, "d", 1),
	}
	var want []stored
	var last uint64
	for _, b := range batches {
		want = append(want, commit(t, f.s, last, b...)...)
		last = want[len(want)-1].id
		if got := latest(t, f.s); got != last {
			t.Fatalf("LatestUpdateID = %d after Commit returned %d", got, last)
		}
	}
	other := f.handle(t)
	if got := latest(t, other); got != last {
		t.Errorf("LatestUpdateID on another handle = %d, want %d", got, last)
	}
	id := func(i int) uint64 { return want[i].id }
	ranges := []struct {
		name      string
		low, high uint64
	}{
		{"everything", 0, all},
		{"first to last", id(0), last},
		{"one record", id(3), id(3)},
		{"middle", id(2), id(7)},
		{"low above high", id(7), id(2)},
		{"high beyond latest", id(6), last + 100},
		{"low beyond latest", last + 1, all},
		{"zero to zero", 0, 0},
		{"up to first", 0, id(0)},
	}
	for _, r := range ranges {
		exp := filter(want, r.low, r.high)
		expectRecords(t, r.name, readAll(t, f.s, r.low, r.high), exp)
		expectRecords(t, r.name+" (other handle)", readAll(t, other, r.low, r.high), exp)
	}
}

// testCallerBuffers checks that a caller reusing its slices after Commit
// does not change the log.
func testCallerBuffers(t *testing.T, h Harness) {
	f := newFixture(t, h)
	c := contents(t, "mutable")
	key := []byte("mutable")
	want := commit(t, f.s, 0, logstore.Record{Contents: c, SingleKey: key})
	want[0].contents = contents(t, "mutable")
	for i := range c {
		c[i] = 'X'
	}
	key[0] = 'X'
	expectRecords(t, "after mutating the committed slices", readAll(t, f.s, 0, all), want)
}

// testReadStops checks that an error from the ReadUpdates callback stops
// the read and is returned.
func testReadStops(t *testing.T, h Harness) {
	f := newFixture(t, h)
	commit(t, f.s, 0, records(t, "r", 5)...)
	errStop := errors.New("stop here")
	calls := 0
	err := f.s.ReadUpdates(f.ctx, 0, all, func(uint64, []byte) error {
		calls++
		if calls == 3 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf("ReadUpdates returned %v, want the callback's error", err)
	}
	if calls != 3 {
		t.Errorf("callback called %d times, want 3", calls)
	}
}

// testEmptyCommit checks that committing no records commits nothing and
// returns the latest id.
func testEmptyCommit(t *testing.T, h Harness) {
	f := newFixture(t, h)
	var want []stored
	for _, n := range []int{0, 2, 0} {
		prev := latest(t, f.s)
		if n > 0 {
			want = append(want, commit(t, f.s, prev, records(t, "e", n)...)...)
			continue
		}
		for _, recs := range [][]logstore.Record{nil, {}} {
			got, err := f.s.Commit(f.ctx, logstore.LogID{}, recs)
			if err != nil || got.Last != prev {
				t.Errorf("Commit(%#v) = %+v, %v; want last %d, nil", recs, got, err, prev)
			}
		}
	}
	expectRecords(t, "after empty commits", readAll(t, f.s, 0, all), want)
	if got := latest(t, f.s); got != want[len(want)-1].id {
		t.Errorf("LatestUpdateID = %d, want %d", got, want[len(want)-1].id)
	}
}
