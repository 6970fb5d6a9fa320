package main

import "testing"

// TestOthersDelta: the followers' statements are the global delta less
// each own session's; a replaced own connection makes the figure unknown.
func TestOthersDelta(t *testing.T) {
	before := serverSnapshot{
		global: counters{"Questions": 1000, "Com_select": 500},
		own:    []counters{{"Questions": 10, "Com_select": 2}, {"Questions": 100, "Com_select": 50}},
		ids:    []int64{7, 8},
	}
	after := serverSnapshot{
		global: counters{"Questions": 1500, "Com_select": 800},
		own:    []counters{{"Questions": 14, "Com_select": 2}, {"Questions": 196, "Com_select": 90}},
		ids:    []int64{7, 8},
	}
	d, err := othersDelta(before, after)
	if err != nil {
		t.Fatal(err)
	}
	if d["Questions"] != 500-4-96 || d["Com_select"] != 300-0-40 {
		t.Errorf("delta %v; want Questions 400, Com_select 260", d)
	}
	after.ids = []int64{7, 9}
	if _, err := othersDelta(before, after); err == nil {
		t.Error("a replaced connection went unnoticed")
	}
}

func TestConnectionRoom(t *testing.T) {
	for _, tc := range []struct {
		max, inUse int64
		followers  int
		ok         bool
	}{
		{151, 3, 200, false}, // MariaDB's default: 200 followers never fit
		{151, 3, 143, true},
		{151, 3, 144, false},
		{1000, 4, 200, true},
		{151, 140, 10, false}, // a shared server busy with other clients
	} {
		err := connectionRoom(tc.max, tc.inUse, tc.followers)
		if (err == nil) != tc.ok {
			t.Errorf("connectionRoom(%d, %d, %d) = %v; want ok %v", tc.max, tc.inUse, tc.followers, err, tc.ok)
		}
	}
}
