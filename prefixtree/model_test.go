package prefixtree

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// model is the reference the map is compared against: a Go map from key to
// value and the id of the record that wrote it (deletes keep the id).
type model struct {
	vals map[string][]byte
	ids  map[string]uint64
	dead map[string]bool
}

func newModel() *model {
	return &model{vals: map[string][]byte{}, ids: map[string]uint64{}, dead: map[string]bool{}}
}

func (m *model) put(k string, v []byte, id uint64) bool {
	if m.ids[k] > id {
		return false
	}
	m.vals[k], m.ids[k] = v, id
	delete(m.dead, k)
	return true
}

func (m *model) del(k string, id uint64) bool {
	if m.ids[k] > id {
		return false
	}
	delete(m.vals, k)
	m.ids[k], m.dead[k] = id, true
	return true
}

func (m *model) sortedKeys() []string {
	keys := make([]string, 0, len(m.vals))
	for k := range m.vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func openTree(t testing.TB) *Tree {
	t.Helper()
	tr, err := Open(filepath.Join(t.TempDir(), "state"), Options{MaxSize: 8 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Check(); err != nil {
			t.Errorf("Check: %v", err)
		}
		tr.Close()
	})
	return tr
}

// randomKey draws keys from a small alphabet so that many share prefixes
// longer than 8 bytes.
func randomKey(r *rand.Rand, maxLen int) string {
	n := 1 + r.IntN(maxLen)
	if r.IntN(4) == 0 {
		n = 1 + r.IntN(12)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = "ab\x00\xff"[r.IntN(4)]
	}
	return string(b)
}

func randomValue(r *rand.Rand) []byte {
	n := r.IntN(40)
	switch r.IntN(50) {
	case 0:
		n = r.IntN(64 << 10)
	case 1:
		n = 0
	case 2:
		n = 200 + r.IntN(2000)
	}
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

func compareWithModel(t testing.TB, tr *Tree, m *model) {
	t.Helper()
	for k, want := range m.vals {
		got, err := tr.Get([]byte(k))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get(%q) = %d bytes, %v; want %d bytes", k, len(got), err, len(want))
		}
	}
	for k := range m.dead {
		if _, err := tr.Get([]byte(k)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(deleted %q) err = %v", k, err)
		}
	}
	var keys []string
	for k, v := range tr.All(nil) {
		keys = append(keys, string(k))
		if !bytes.Equal(v, m.vals[string(k)]) {
			t.Fatalf("iteration value of %q differs", k)
		}
	}
	if want := m.sortedKeys(); !slices.Equal(keys, want) {
		t.Fatalf("iteration gave %d keys, want %d", len(keys), len(want))
	}
	if tr.Len() != uint64(len(m.vals)) {
		t.Fatalf("Len = %d, want %d", tr.Len(), len(m.vals))
	}
}

// applyRandomOps runs n random operations in batches of random size.
func applyRandomOps(t testing.TB, tr *Tree, m *model, r *rand.Rand, n int, nextID *uint64, maxKeyLen int) {
	t.Helper()
	for done := 0; done < n; {
		b, err := tr.Begin()
		if err != nil {
			t.Fatal(err)
		}
		size := 1 + r.IntN(20)
		for i := 0; i < size; i++ {
			k := randomKey(r, maxKeyLen)
			id := *nextID
			*nextID++
			if r.IntN(10) == 0 && id > 50 {
				id -= uint64(r.IntN(50)) // an older record: must not override newer data
			}
			switch {
			case r.IntN(3) == 0:
				got, err := b.Delete([]byte(k), id)
				if err != nil {
					t.Fatal(err)
				}
				if want := m.del(k, id); got != want {
					t.Fatalf("Delete(%q, %d) applied=%v, want %v", k, id, got, want)
				}
			default:
				v := randomValue(r)
				got, err := b.Put([]byte(k), v, id)
				if err != nil {
					t.Fatal(err)
				}
				if want := m.put(k, v, id); got != want {
					t.Fatalf("Put(%q, %d) applied=%v, want %v", k, id, got, want)
				}
			}
		}
		if r.IntN(50) == 0 {
			if _, err := b.PurgeTombstones(*nextID - 100); err != nil {
				t.Fatal(err)
			}
			for k := range m.dead {
				if m.ids[k] <= *nextID-100 {
					delete(m.dead, k)
					delete(m.ids, k)
				}
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		done += size
	}
}

func TestModelRandomized(t *testing.T) {
	ops := 100_000
	if testing.Short() {
		ops = 20_000
	}
	for seed, n := range map[uint64]int{1: ops, 2: ops / 5} {
		ops := n
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			tr := openTree(t)
			m := newModel()
			r := rand.New(rand.NewPCG(seed, 99))
			id := uint64(1)
			for done := 0; done < ops; done += ops / 10 {
				applyRandomOps(t, tr, m, r, ops/10, &id, 300)
				compareWithModel(t, tr, m)
				if err := tr.Check(); err != nil {
					t.Fatal(err)
				}
			}
			// Delete everything: the tree must shrink back to nothing.
			b, _ := tr.Begin()
			for k := range m.vals {
				if _, err := b.Delete([]byte(k), id); err != nil {
					t.Fatal(err)
				}
				m.del(k, id)
			}
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
			compareWithModel(t, tr, m)
		})
	}
}

func TestSeekAndPrefix(t *testing.T) {
	tr := openTree(t)
	m := newModel()
	for i := 0; i < 5000; i++ {
		k := fmt.Sprintf("key/%04d/%d", i%977, i)
		tr.Put([]byte(k), []byte(k), uint64(i+1))
		m.put(k, []byte(k), uint64(i+1))
	}
	all := m.sortedKeys()
	for _, start := range []string{"", "key/0500", "key/0500/500", "key/9", "a", "key/0976/"} {
		var got []string
		for k := range tr.All([]byte(start)) {
			got = append(got, string(k))
		}
		i, _ := slices.BinarySearch(all, start)
		if !slices.Equal(got, all[i:]) {
			t.Fatalf("All(%q): %d keys, want %d", start, len(got), len(all)-i)
		}
	}
	var got []string
	for k := range tr.Prefix([]byte("key/0123/")) {
		got = append(got, string(k))
	}
	var want []string
	for _, k := range all {
		if len(k) > 9 && k[:9] == "key/0123/" {
			want = append(want, k)
		}
	}
	if !slices.Equal(got, want) || len(want) == 0 {
		t.Fatalf("Prefix: %v, want %v", got, want)
	}
}

// TestSortedLoadFillsLeaves loads keys in ascending order (as a snapshot
// load does): leaves then fill up instead of being split in halves.
func TestSortedLoadFillsLeaves(t *testing.T) {
	tr := openTree(t)
	const n = 20000
	m := newModel()
	b, _ := tr.Begin()
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("key%08d", i)
		if _, err := b.Put([]byte(k), []byte("v"), 1); err != nil {
			t.Fatal(err)
		}
		m.put(k, []byte("v"), 1)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	nodes := 0
	if err := walk(tr.File(), func(off, size uint64) error {
		if size == nodeSize {
			nodes++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if full := n/leafCap + 1; nodes > full+full/10+5 {
		t.Fatalf("%d nodes for %d sorted keys; full leaves need %d", nodes, n, full)
	}
	compareWithModel(t, tr, m)
	// Random inserts and deletes afterwards keep the tree valid.
	r := rand.New(rand.NewPCG(3, 4))
	id := uint64(2)
	applyRandomOps(t, tr, m, r, 3000, &id, 20)
	compareWithModel(t, tr, m)
}
