package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whycache/whycache"
)

// TestVerifyState: a state passes when it holds exactly the writes up to
// its update id; it fails when it lacks one of them (a state claiming a
// record it does not hold), holds a wrong value, or holds a later write.
func TestVerifyState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := whycache.NewFileStore(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	inst, err := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "s.state")})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	var writes []write
	for n := range 5 {
		id, err := inst.Set(ctx, key(n), value(n))
		if err != nil {
			t.Fatal(err)
		}
		writes = append(writes, write{n: n, id: id})
	}
	otherID, err := inst.Set(ctx, key(7), []byte("another value"))
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Update(ctx); err != nil {
		t.Fatal(err)
	}
	x := inst.UpdateID()
	if k, err := verifyState(inst, writes); err != nil || k != 5 {
		t.Fatalf("verifyState of a complete state = %d, %v", k, err)
	}
	for _, tc := range []struct {
		name   string
		writes []write
		want   string
	}{
		{"missing record", append(writes[:5:5], write{n: 99, id: x}), "fleet-00000099"},
		{"wrong value", append(writes[:5:5], write{n: 7, id: otherID}), `holds "another value"`},
		{"later write held", []write{{n: 3, id: x + 1}}, "later record"},
	} {
		_, err := verifyState(inst, tc.writes)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: verifyState = %v; want an error naming %q", tc.name, err, tc.want)
		}
	}
}
