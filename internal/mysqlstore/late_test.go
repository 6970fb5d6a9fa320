package mysqlstore

import (
	"testing"
	"time"
)

func TestPassedHoles(t *testing.T) {
	const period, keep = time.Second, time.Minute
	t0 := time.Unix(1000, 0)
	var h passedHoles
	if r := h.due(t0, period, keep); r != nil {
		t.Fatalf("due with nothing passed: %v", r)
	}
	h.add(5, 7, t0)
	if r := h.due(t0.Add(period/2), period, keep); r != nil {
		t.Fatalf("due half a period after the first hole: %v", r)
	}
	h.add(10, 10, t0.Add(period/2))
	r := h.due(t0.Add(period), period, keep)
	if len(r) != 2 || r[0].lo != 5 || r[0].hi != 7 || r[1].lo != 10 {
		t.Fatalf("due a period after the first hole: %v", r)
	}
	if r := h.due(t0.Add(period+period/2), period, keep); r != nil {
		t.Fatalf("due again within the period: %v", r)
	}
	if r := h.due(t0.Add(keep+period/4), period, keep); len(r) != 1 || r[0].lo != 10 {
		t.Fatalf("due after the first range's keep: %v", r)
	}
	if r := h.due(t0.Add(2*keep), period, keep); r != nil || len(h.ranges) != 0 {
		t.Fatalf("due after every range's keep: %v (kept %d)", r, len(h.ranges))
	}

	for i := range maxPassedRanges + 3 {
		h.add(uint64(100+2*i), uint64(100+2*i), t0)
	}
	if len(h.ranges) != maxPassedRanges || h.ranges[0].lo != 106 || h.ranges[len(h.ranges)-1].lo != uint64(100+2*(maxPassedRanges+2)) {
		t.Fatalf("over the bound: %d ranges, first %d, last %d; want %d, the 3 oldest let go", len(h.ranges), h.ranges[0].lo, h.ranges[len(h.ranges)-1].lo, maxPassedRanges)
	}

	h.found(20)
	h.found(30)
	if len(h.ranges) != 0 {
		t.Fatalf("ranges kept after a late row: %d", len(h.ranges))
	}
	for _, tc := range []struct {
		after, want uint64
	}{
		{25, 20}, // a reader past the late row
		{25, 20}, // again: it stays until a reader starts over
		{20, 0},  // a reader at it clears it
		{25, 0},
	} {
		if got := h.judge(tc.after); got != tc.want {
			t.Fatalf("judge(%d) = %d, want %d", tc.after, got, tc.want)
		}
	}
}

func TestLateQuery(t *testing.T) {
	got := lateQuery("`t`", []passedRange{{lo: 5, hi: 7}, {lo: 10, hi: 10}})
	want := "SELECT id FROM `t` WHERE id BETWEEN 5 AND 7 OR id BETWEEN 10 AND 10 ORDER BY id LIMIT 1"
	if got != want {
		t.Fatalf("lateQuery = %q\nwant %q", got, want)
	}
}

// TestSeedRetriedUntilDone: a store seeds at its first poll by a position
// and again at the next ones until a seed succeeded (seedDone); a poll
// from id 0 makes it needless.
func TestSeedRetriedUntilDone(t *testing.T) {
	var h passedHoles
	if !h.needSeed(5) || !h.needSeed(5) {
		t.Fatal("a seed that did not succeed is not asked for again")
	}
	h.seedDone()
	if h.needSeed(5) {
		t.Fatal("seed asked for again after it succeeded")
	}
	var fresh passedHoles
	if fresh.needSeed(0) || fresh.needSeed(7) {
		t.Fatal("seed asked for after a poll from id 0")
	}
}
