package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// decision is what the compaction plans of these tests do with a record.
type decision int

const (
	keep decision = iota
	drop
	replace
)

// plan decides by position: every third record is dropped, the next one
// replaced, the one after kept.
func plan(i int) decision {
	return [...]decision{drop, replace, keep}[i%3]
}

// replacement is the contents a record is replaced with.
func replacement(t *testing.T, r stored) []byte {
	t.Helper()
	return contents(t, fmt.Sprintf("compacted %d", r.id))
}

// planned returns the log that compacting recs[:n] by plan leaves.
func planned(t *testing.T, recs []stored, n int) []stored {
	t.Helper()
	var out []stored
	for i, r := range recs {
		switch {
		case i >= n || plan(i) == keep:
			out = append(out, r)
		case plan(i) == replace:
			out = append(out, stored{r.id, replacement(t, r)})
		}
	}
	return out
}

// planFunc returns a CompactFunc that applies plan to recs (looked up by
// id) and records the calls it gets in calls.
func planFunc(t *testing.T, recs []stored, calls *[]stored) logstore.CompactFunc {
	index := make(map[uint64]int)
	for i, r := range recs {
		index[r.id] = i
	}
	return func(id uint64, c []byte) ([]byte, bool, error) {
		*calls = append(*calls, stored{id, bytes.Clone(c)})
		i, ok := index[id]
		if !ok {
			return nil, false, fmt.Errorf("compact called for unknown record %d", id)
		}
		switch plan(i) {
		case drop:
			return nil, false, nil
		case replace:
			return replacement(t, recs[i]), true, nil
		}
		return c, true, nil
	}
}

// testCompactDecisions checks that Compact offers exactly the records up to
// its limit, applies keep/drop/replace, keeps ids, leaves records above the
// limit alone and counts them right.
func testCompactDecisions(t *testing.T, h Harness) {
	f := newFixture(t, h)
	recs := commit(t, f.s, 0, records(t, "x", 10)...)
	const n = 7
	var calls []stored
	stats, err := f.s.Compact(f.ctx, recs[n-1].id, 0, planFunc(t, recs, &calls))
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	expectRecords(t, "records offered to the CompactFunc", calls, recs[:n])
	want := planned(t, recs, n)
	expectRecords(t, "log after Compact", readAll(t, f.s, 0, all), want)
	expectRecords(t, "log after Compact (other handle)", readAll(t, f.handle(t), 0, all), want)

	var exp logstore.CompactStats
	for i, r := range recs[:n] {
		exp.RecordsBefore++
		exp.BytesBefore += uint64(len(r.contents))
		switch plan(i) {
		case keep:
			exp.RecordsAfter++
			exp.BytesAfter += uint64(len(r.contents))
		case replace:
			exp.RecordsAfter++
			exp.BytesAfter += uint64(len(replacement(t, r)))
		}
	}
	if stats != exp {
		t.Errorf("CompactStats = %+v, want %+v", stats, exp)
	}
	if got := latest(t, f.s); got != recs[len(recs)-1].id {
		t.Errorf("LatestUpdateID = %d after Compact, want %d", got, recs[len(recs)-1].id)
	}
	if in := info(t, f.s); in.Horizon != 0 {
		t.Errorf("Horizon = %d after Compact with horizon 0", in.Horizon)
	}

	// Again with the same limit, now that the record at the limit is gone:
	// the survivors up to it are offered, nothing above it.
	calls = nil
	keepAll := func(id uint64, c []byte) ([]byte, bool, error) {
		calls = append(calls, stored{id, bytes.Clone(c)})
		return c, true, nil
	}
	if plan(n-1) != drop {
		t.Fatalf("plan keeps the record at the limit; this step needs it dropped")
	}
	if _, err := f.s.Compact(f.ctx, recs[n-1].id, 0, keepAll); err != nil {
		t.Fatalf("second Compact: %v", err)
	}
	expectRecords(t, "records offered with the limit on a dropped record", calls, filter(want, 0, recs[n-1].id))
	expectRecords(t, "log after a keep-all Compact", readAll(t, f.s, 0, all), want)
}

// testCompactHorizon checks that Compact raises the horizon before it
// changes any record, and never lowers it.
func testCompactHorizon(t *testing.T, h Harness) {
	f := newFixture(t, h)
	other := f.handle(t)
	recs := commit(t, f.s, 0, records(t, "h", 3)...)
	last := recs[len(recs)-1].id
	steps := []struct{ horizon, want uint64 }{
		{0, 0},
		{recs[1].id, recs[1].id},
		{recs[0].id, recs[1].id},
		{0, recs[1].id},
		{last, last},
		{last + 50, last + 50},
		{last, last + 50},
	}
	for _, st := range steps {
		calls := 0
		_, err := f.s.Compact(f.ctx, last, st.horizon, func(id uint64, c []byte) ([]byte, bool, error) {
			calls++
			if calls == 1 {
				in, err := other.Info(f.ctx)
				if err != nil {
					return nil, false, err
				}
				if in.Horizon != st.want {
					t.Errorf("Compact(horizon %d): Horizon is %d when the first record is offered, want %d",
						st.horizon, in.Horizon, st.want)
				}
			}
			return c, true, nil
		})
		if err != nil {
			t.Fatalf("Compact(horizon %d): %v", st.horizon, err)
		}
		if calls != len(recs) {
			t.Errorf("Compact(horizon %d) offered %d records, want %d", st.horizon, calls, len(recs))
		}
		if got := info(t, f.s).Horizon; got != st.want {
			t.Errorf("Compact(horizon %d): Horizon = %d, want %d", st.horizon, got, st.want)
		}
	}
	expectRecords(t, "log after keep-all compactions", readAll(t, f.s, 0, all), recs)
}

// testCompactErrors checks that an error from the CompactFunc, or a
// replacement above MaxRecordSize, stops Compact and leaves the record it
// was about and the later ones unchanged.
func testCompactErrors(t *testing.T, h Harness) {
	errFn := errors.New("compact func failed")
	cases := []struct {
		name string
		// fail returns what the 3rd CompactFunc call returns, given the
		// store's MaxRecordSize; ok=false skips the case.
		fail func(t *testing.T, maxSize int) (contents []byte, ok bool)
		want error
	}{
		{"func error", func(*testing.T, int) ([]byte, bool) { return nil, true }, errFn},
		{"replacement too large", func(t *testing.T, maxSize int) ([]byte, bool) {
			if maxSize > maxTestedLimit {
				return nil, false
			}
			return sized(t, 'z', maxSize+1), true
		}, logstore.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, h)
			bad, ok := tc.fail(t, f.s.Limits().MaxRecordSize)
			if !ok {
				t.Skip("MaxRecordSize too large to test")
			}
			recs := commit(t, f.s, 0, records(t, "e", 6)...)
			calls := 0
			_, err := f.s.Compact(f.ctx, recs[len(recs)-1].id, 0, func(id uint64, c []byte) ([]byte, bool, error) {
				calls++
				switch {
				case calls < 3:
					return nil, false, nil
				case tc.want == errFn:
					return nil, false, errFn
				}
				return bad, true, nil
			})
			if !errors.Is(err, tc.want) {
				t.Errorf("Compact returned %v, want %v", err, tc.want)
			}
			if calls != 3 {
				t.Errorf("CompactFunc called %d times, want 3 (stop at the error)", calls)
			}
			got := readAll(t, f.s, 0, all)
			rest := len(recs) - 2
			if len(got) < rest || len(got) > len(recs) {
				t.Fatalf("%d records after failed Compact, want %d to %d", len(got), rest, len(recs))
			}
			// The two records dropped before the error may or may not be
			// gone; the others are as committed.
			expectRecords(t, "records from the failing one on", got[len(got)-rest:], recs[2:])
			expectRecords(t, "records before the failing one", got[:len(got)-rest], filterIDs(recs[:2], got))
		})
	}
}

// filterIDs returns the records of recs whose ids appear in got.
func filterIDs(recs, got []stored) []stored {
	ids := make(map[uint64]bool)
	for _, g := range got {
		ids[g.id] = true
	}
	var out []stored
	for _, r := range recs {
		if ids[r.id] {
			out = append(out, r)
		}
	}
	return out
}
