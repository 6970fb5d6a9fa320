package whycache

import (
	"testing"
)

// TestIdleUpdateWritesNothing: an Update that finds nothing new leaves the
// state file untouched (no batch: no lock taken, no readers woken), on every
// store; one that finds a record applies it.
func TestIdleUpdateWritesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		store := ts.newLog(t)
		w := newInstance(t, store, Options{}) // another machine, writing
		mustUpdate(t, w)
		c := newInstance(t, store, Options{})
		mustUpdate(t, c)
		commits := func() uint64 {
			tr, err := c.tree()
			if err != nil {
				t.Fatal(err)
			}
			return tr.File().Stats().Commits
		}
		mustSet(t, w, "a", "1")
		before := commits()
		mustUpdate(t, c)
		if commits() == before {
			t.Fatal("an Update that applied a record committed no batch")
		}
		wantValue(t, c, "a", []byte("1"))
		idle := commits()
		for range 3 {
			mustUpdate(t, c)
		}
		if got := commits(); got != idle {
			t.Fatalf("3 idle Updates committed %d batches, want 0", got-idle)
		}
		mustSet(t, w, "a", "2")
		mustUpdate(t, c)
		wantValue(t, c, "a", []byte("2"))
	})
}
