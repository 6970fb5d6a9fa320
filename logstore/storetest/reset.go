package storetest

import (
	"testing"

	"github.com/whycache/whycache/logstore"
)

// testReset checks that Reset empties the log for every handle, gives it a
// new identity, sets the horizon to 0 and never lets ids go back.
func testReset(t *testing.T, h Harness) {
	f := newFixture(t, h)
	other := f.handle(t)
	recs := commit(t, f.s, 0, records(t, "before reset", 3)...)
	keepAll := func(_ uint64, c []byte) ([]byte, bool, error) { return c, true, nil }
	if _, err := f.s.Compact(f.ctx, recs[2].id, recs[1].id, keepAll); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	seen := []logstore.LogID{info(t, f.s).ID}
	high := recs[len(recs)-1].id

	for round, s := range []logstore.Store{f.s, other} {
		if err := s.Reset(f.ctx); err != nil {
			t.Fatalf("round %d: Reset: %v", round, err)
		}
		in := info(t, f.s)
		if got := info(t, other); got != in {
			t.Errorf("round %d: Info differs between handles after Reset: %+v and %+v", round, in, got)
		}
		for _, old := range seen {
			if in.ID == old {
				t.Errorf("round %d: Info.ID %x reused after Reset", round, in.ID)
			}
		}
		if in.ID == (logstore.LogID{}) {
			t.Errorf("round %d: Info.ID is zero after Reset", round)
		}
		seen = append(seen, in.ID)
		if in.Horizon != 0 {
			t.Errorf("round %d: Horizon = %d after Reset, want 0", round, in.Horizon)
		}
		for _, s := range []logstore.Store{f.s, other} {
			expectRecords(t, "log after Reset", readAll(t, s, 0, all), nil)
			if got := latest(t, s); got != 0 && got < high {
				t.Errorf("round %d: LatestUpdateID = %d after Reset, want 0 or at least %d", round, got, high)
			}
		}
		got := commit(t, other, high, records(t, "after reset", 2)...)
		high = got[len(got)-1].id
		for _, s := range []logstore.Store{f.s, other} {
			expectRecords(t, "log after Reset and Commit", readAll(t, s, 0, all), got)
			if id := latest(t, s); id != high {
				t.Errorf("round %d: LatestUpdateID = %d after Commit returned %d", round, id, high)
			}
		}
	}
}
