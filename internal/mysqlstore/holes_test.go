package mysqlstore

import (
	"strings"
	"testing"
	"time"
)

func TestHoleClock(t *testing.T) {
	const timeout = 10 * time.Second
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		observe  uint64 // 0: no observation
		now      time.Duration
		hole     uint64
		resolved bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a new hole waits", []step{{observe: 5, now: 0, hole: 4}, {now: 9 * time.Second, hole: 4}, {now: timeout, hole: 4, resolved: true}}},
		{"ids above the first sight wait for their own", []step{
			{observe: 5, now: 0, hole: 4},
			{observe: 9, now: 5 * time.Second, hole: 7},
			{now: timeout, hole: 4, resolved: true},
			{now: timeout, hole: 7},
			{now: 15 * time.Second, hole: 7, resolved: true},
			{now: time.Hour, hole: 9}, // never seen below a higher id
		}},
		{"a table that went backwards starts over", []step{
			{observe: 50, now: 0, hole: 10},
			{observe: 3, now: time.Minute, hole: 2},
			{now: time.Minute + timeout, hole: 2, resolved: true},
			{now: time.Minute + timeout, hole: 10},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHoleClock(timeout)
			for i, s := range tc.steps {
				if s.observe != 0 {
					h.observe(s.observe, at(s.now))
				}
				if got := h.resolved(s.hole, at(s.now)); got != s.resolved {
					t.Fatalf("step %d: resolved(%d) at +%v = %v, want %v", i, s.hole, s.now, got, s.resolved)
				}
			}
		})
	}
}

func TestPyCheckVars(t *testing.T) {
	for mode, want := range map[string]int{"0": 0, "1": 0, "2": 1, "": 0} {
		v := map[string]string{}
		if mode != "" {
			v["innodb_autoinc_lock_mode"] = mode
		}
		if got := pyCheckVars(v); len(got) != want {
			t.Errorf("innodb_autoinc_lock_mode %q: problems %q, want %d", mode, got, want)
		}
		if len(checkVars(v)) != 0 {
			t.Errorf("innodb_autoinc_lock_mode %q is a problem in Go mode", mode)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		ok   bool
	}{{"go", FormatGo, true}, {"python", FormatPython, true}, {"Python", FormatPython, true}, {"", 0, false}, {"py", 0, false}} {
		got, err := ParseFormat(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseFormat(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != strings.ToLower(tc.in) {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}
