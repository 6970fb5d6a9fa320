package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	d := func(ms ...int) []time.Duration {
		var out []time.Duration
		for _, m := range ms {
			out = append(out, time.Duration(m)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", d(7), 0.99, 7 * time.Millisecond},
		{"median of 100", d(hundred...), 0.5, 50 * time.Millisecond},
		{"p99 of 100", d(hundred...), 0.99, 99 * time.Millisecond},
		{"max of 100", d(hundred...), 1, 100 * time.Millisecond},
		{"min", d(3, 4, 5), 0, 3 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v; want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

// TestMatch: a write's delay is the first time its follower's update id
// was seen at or past its id; writes a follower never reached are missing;
// one seen before Set returned counts 0 and is counted early; unmeasured
// writes are left out.
func TestMatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	writes := []write{
		{n: 1, id: 10, returned: at(0), measured: false},
		{n: 2, id: 11, returned: at(10), measured: true},
		{n: 3, id: 12, returned: at(20), measured: true},
		{n: 4, id: 13, returned: at(30), measured: true},
	}
	w := &watcher{seen: [][]transition{
		// follower 0 jumps from 10 to 12 at 50 ms (applied at 45 ms), then
		// to 13 at 130 ms (apply time unknown).
		{{id: 10, at: at(5)}, {id: 12, at: at(50), applied: at(45)}, {id: 13, at: at(130)}},
		// follower 1 holds 11 before its Set returned, never reaches 13.
		{{id: 11, at: at(8)}, {id: 12, at: at(60)}},
	}, fleet: make([]*follower, 2)}
	p := w.match(writes)
	want := []time.Duration{0, 30 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond}
	if len(p.delays) != len(want) {
		t.Fatalf("delays %v; want %v", p.delays, want)
	}
	for i := range want {
		if p.delays[i] != want[i] {
			t.Fatalf("delays %v; want %v", p.delays, want)
		}
	}
	// By apply time: writes 2 and 3 reached by follower 0's batch applied
	// at 45 ms; the rest unknown.
	if wantApplied := []time.Duration{25 * time.Millisecond, 35 * time.Millisecond}; len(p.applied) != 2 || p.applied[0] != wantApplied[0] || p.applied[1] != wantApplied[1] {
		t.Errorf("applied %v; want %v", p.applied, wantApplied)
	}
	if p.missing != 1 || p.early != 1 || p.perFollower[0] != 3 || p.perFollower[1] != 2 {
		t.Errorf("missing %d, early %d, per follower %v; want 1, 1, [3 2]", p.missing, p.early, p.perFollower)
	}
}

// TestPollGaps: the gaps between a follower's consecutive changes, only
// for pairs inside the window, over all followers, sorted.
func TestPollGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := &watcher{seen: [][]transition{
		{{id: 1, at: at(0)}, {id: 2, at: at(100)}, {id: 3, at: at(250)}, {id: 4, at: at(400)}},
		{{id: 2, at: at(90)}, {id: 4, at: at(190)}},
	}}
	got := w.pollGaps(at(50), at(300))
	want := []time.Duration{100 * time.Millisecond, 150 * time.Millisecond}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("pollGaps = %v; want %v", got, want)
	}
}
