package prefixtree

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/whycache/whycache/shm"
)

// expModel is the reference for TestExpiryRandomized: the value, expiry
// and record id of every key written.
type expModel struct {
	vals map[string][]byte
	exp  map[string]int64
	ids  map[string]uint64
	dead map[string]bool
}

func (m *expModel) visible(k string, now int64) bool {
	_, ok := m.vals[k]
	return ok && (m.exp[k] == 0 || m.exp[k] > now)
}

// TestExpiryRandomized mixes puts that never expire, puts that expire in
// the future, puts already expired and deletes, in place and not, over
// small and large values, and compares every read path with the model: an
// expired entry is invisible to AppendGet, GetEntry and cursors but stays
// counted in Len, and Check finds the map consistent.
func TestExpiryRandomized(t *testing.T) {
	tr := openTree(t)
	r := rand.New(rand.NewPCG(7, 13))
	m := &expModel{vals: map[string][]byte{}, exp: map[string]int64{}, ids: map[string]uint64{}, dead: map[string]bool{}}
	now := time.Now().UnixNano()
	future, past := now+int64(time.Hour), now-int64(time.Second)
	id := uint64(1)
	for round := 0; round < 300; round++ {
		b, err := tr.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1+r.IntN(20); i++ {
			k := randomKey(r, 6)
			id++
			if r.IntN(4) == 0 {
				if _, err := b.Delete([]byte(k), id); err != nil {
					t.Fatal(err)
				}
				delete(m.vals, k)
				m.ids[k], m.dead[k], m.exp[k] = id, true, 0
				continue
			}
			v := randomValue(r)
			exp := []int64{0, future, past}[r.IntN(3)]
			if _, err := b.PutExpiring([]byte(k), v, id, exp); err != nil {
				t.Fatal(err)
			}
			m.vals[k], m.exp[k], m.ids[k] = v, exp, id
			delete(m.dead, k)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	now = time.Now().UnixNano()
	var want []string
	for k, v := range m.vals {
		got, exp, found, err := tr.AppendGetExpiry([]byte("prefix"), []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if vis := m.visible(k, now); found != vis || (vis && (!bytes.Equal(got, append([]byte("prefix"), v...)) || exp != m.exp[k])) {
			t.Fatalf("AppendGetExpiry(%q) = %d bytes, %d, %v; want visible=%v, %d bytes, expiry %d", k, len(got), exp, found, vis, len(v), m.exp[k])
		}
		if !found && !bytes.Equal(got, []byte("prefix")) {
			t.Fatalf("AppendGetExpiry(%q) of a hidden entry changed dst to %q", k, got)
		}
		val, gid, gfound, err := tr.GetEntry([]byte(k))
		if err != nil || gfound != found || gid != m.ids[k] || (found && !bytes.Equal(val, v)) {
			t.Fatalf("GetEntry(%q) = %d bytes, id %d, %v, %v; want id %d, found %v", k, len(val), gid, gfound, err, m.ids[k], found)
		}
		if found {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	var got []string
	c := tr.Cursor()
	for c.Next() {
		k := string(c.Key())
		got = append(got, k)
		if !bytes.Equal(c.Value(), m.vals[k]) || c.Expires() != m.exp[k] {
			t.Fatalf("cursor at %q: %d bytes, expiry %d; want %d bytes, %d", k, len(c.Value()), c.Expires(), len(m.vals[k]), m.exp[k])
		}
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("cursor yielded %d keys, want the %d visible ones", len(got), len(want))
	}
	if tr.Len() != uint64(len(m.vals)) {
		t.Fatalf("Len = %d, want %d (expired entries stay counted)", tr.Len(), len(m.vals))
	}
	if len(want) == len(m.vals) || len(want) == 0 {
		t.Fatalf("%d visible of %d: the test did not mix expired and live entries", len(want), len(m.vals))
	}
}

// TestExpiryPassesInTime: an entry is found until its expiry and not
// after, on the same map, with no write in between.
func TestExpiryPassesInTime(t *testing.T) {
	tr := openTree(t)
	exp := time.Now().Add(150 * time.Millisecond).UnixNano()
	if _, err := tr.single(func(b *Batch) (bool, error) { return b.PutExpiring([]byte("k"), []byte("v"), 1, exp) }); err != nil {
		t.Fatal(err)
	}
	if v, err := tr.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get before expiry = %q, %v", v, err)
	}
	time.Sleep(time.Until(time.Unix(0, exp)) + 10*time.Millisecond)
	if _, err := tr.Get([]byte("k")); err != ErrNotFound {
		t.Fatalf("Get after expiry: %v, want ErrNotFound", err)
	}
	for k := range tr.All(nil) {
		t.Fatalf("iteration after expiry yielded %q", k)
	}
}

// TestExpiryRefusedInput: a negative expiry and an expiring value too long
// for the stored length fail the call, not the batch.
func TestExpiryRefusedInput(t *testing.T) {
	tr := openTree(t)
	b, err := tr.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Rollback()
	if _, err := b.PutExpiring([]byte("k"), []byte("v"), 1, -1); err == nil {
		t.Fatal("negative expiry accepted")
	}
	if _, err := b.PutExpiring([]byte("k"), []byte("v"), 2, 10); err != nil {
		t.Fatalf("the batch failed after a refused call: %v", err)
	}
}

// TestLayoutV2StillOpens: a map written in layout version 2 (before
// expiring entries existed) opens, reads, and is marked version 3 by a
// writable Open, while a read-only Open reads it as it is.
func TestLayoutV2StillOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	tr, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Put([]byte("old"), []byte("value"), 1); err != nil {
		t.Fatal(err)
	}
	// Mark the map as version 2, as the previous build wrote it.
	tx, err := tr.File().Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Put64(shm.RootOffset(rootFormat), treeFormatV2)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tr.Close()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open of a version 2 map: %v", err)
	}
	if v, err := ro.Get([]byte("old")); err != nil || string(v) != "value" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if f := ro.File().Root(rootFormat); f != treeFormatV2 {
		t.Fatalf("read-only Open changed the layout word to %#x", f)
	}
	ro.Close()

	rw, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 2 map: %v", err)
	}
	defer rw.Close()
	if f := rw.File().Root(rootFormat); f != treeFormat {
		t.Fatalf("layout word %#x after a writable Open, want %#x", f, treeFormat)
	}
	if v, err := rw.Get([]byte("old")); err != nil || string(v) != "value" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := rw.Check(); err != nil {
		t.Fatal(err)
	}
}
