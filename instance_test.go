package whycache

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/memstore"
	"github.com/whycache/whycache/prefixtree"
)

// testStore is a log store under test: newLog returns a store on a fresh
// log; every store it returns is closed at cleanup.
type testStore struct {
	name   string
	newLog func(t *testing.T) logstore.Store
}

func testStores() []testStore {
	return []testStore{
		{"mem", func(t *testing.T) logstore.Store {
			s, err := memstore.New(memstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"file", func(t *testing.T) logstore.Store {
			s, err := NewFileStore(filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"mysql", func(t *testing.T) logstore.Store {
			s, _ := mysqlTestStore(t, MySQLStoreOptions{})
			return s
		}},
	}
}

// forEachStore runs fn as a subtest for every store.
func forEachStore(t *testing.T, fn func(t *testing.T, ts testStore)) {
	for _, ts := range testStores() {
		t.Run(ts.name, func(t *testing.T) { fn(t, ts) })
	}
}

// newInstance opens an instance on store with its own state file ("a
// machine"), checked and closed at cleanup.
func newInstance(t *testing.T, store logstore.Store, opts Options) *Instance {
	t.Helper()
	if opts.StatePath == "" {
		opts.StatePath = filepath.Join(t.TempDir(), "state")
	}
	c, err := Open(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if tr, err := c.tree(); err == nil && !tr.File().ReadOnly() {
			if err := tr.Check(); err != nil && !prefixtree.IsRetired(err) {
				t.Errorf("state Check: %v", err)
			}
		}
		c.Close()
	})
	return c
}

func mustUpdate(t *testing.T, c *Instance) {
	t.Helper()
	if err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func mustSet(t *testing.T, c *Instance, k, v string) uint64 {
	t.Helper()
	id, err := c.Set(context.Background(), []byte(k), []byte(v))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func wantValue(t *testing.T, c *Instance, k string, want []byte) {
	t.Helper()
	got, err := c.Get([]byte(k))
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes, want %d bytes", k, len(got), len(want))
	}
}

func wantErr(t *testing.T, c *Instance, k string, want error) {
	t.Helper()
	if _, err := c.Get([]byte(k)); !errors.Is(err, want) {
		t.Fatalf("Get(%q) err = %v, want %v", k, err, want)
	}
}

func contents(c *Instance) map[string]string {
	m := map[string]string{}
	for k, v := range c.All() {
		m[string(k)] = string(v)
	}
	return m
}

func TestInstanceBasics(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		c := newInstance(t, ts.newLog(t), Options{})
		wantErr(t, c, "k", ErrInvalidState)
		if c.Valid() {
			t.Fatal("Valid before the first Update")
		}
		mustUpdate(t, c)
		if !c.Valid() {
			t.Fatal("not Valid after Update")
		}
		wantErr(t, c, "missing", ErrNotFound)

		shapes := map[string][]byte{
			"empty":  {},
			"small":  []byte("v"),
			"binary": {0, 1, 2, 0xff, 0},
			"64k":    bytes.Repeat([]byte("x"), 64<<10),
			"utf8":   []byte("héllo wörld"),
		}
		for k, v := range shapes {
			if _, err := c.Set(ctx, []byte(k), v); err != nil {
				t.Fatal(err)
			}
		}
		for k, v := range shapes {
			wantValue(t, c, k, v)
		}
		id, err := c.Delete(ctx, []byte("small"))
		if err != nil || id == 0 {
			t.Fatalf("Delete: %d, %v", id, err)
		}
		wantErr(t, c, "small", ErrNotFound)
		if _, err := c.Delete(ctx, []byte("never-existed")); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		// A second instance on the same state sees writes without Update.
		c2 := newInstance(t, c.Store(), Options{StatePath: c.StatePath()})
		wantValue(t, c2, "64k", shapes["64k"])
		mustSet(t, c, "later", "x")
		wantValue(t, c2, "later", []byte("x"))
		// Another machine sees them after Update.
		m2 := newInstance(t, c.Store(), Options{})
		mustUpdate(t, m2)
		if got, want := contents(m2), contents(c); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("other machine: %v, want %v", got, want)
		}
		if latest, _ := c.Store().LatestUpdateID(ctx); m2.UpdateID() != latest || latest < id+2 {
			t.Fatalf("UpdateID = %d, want the latest id %d", m2.UpdateID(), latest)
		}
	})
}

func TestInstanceEmptyKeyAndSizeLimits(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		c := newInstance(t, ts.newLog(t), Options{})
		mustUpdate(t, c)
		if _, err := c.Set(ctx, nil, []byte("v")); !errors.Is(err, ErrEmptyKey) {
			t.Fatalf("Set empty key: %v", err)
		}
		if _, err := c.Get(nil); !errors.Is(err, ErrEmptyKey) {
			t.Fatalf("Get empty key: %v", err)
		}
		if _, err := c.Delete(ctx, []byte{}); !errors.Is(err, ErrEmptyKey) {
			t.Fatalf("Delete empty key: %v", err)
		}
		if _, err := c.Set(ctx, []byte("big"), make([]byte, 1<<20)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("1 MiB value: %v", err)
		}
		before, _ := c.Store().LatestUpdateID(ctx)
		items := []Item{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: make([]byte, 2<<20)}}
		if _, err := c.SetMulti(ctx, items); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("SetMulti with an oversize item: %v", err)
		}
		if _, err := c.SetMulti(ctx, []Item{{Key: []byte("a")}, {}}); !errors.Is(err, ErrEmptyKey) {
			t.Fatalf("SetMulti with an empty key: %v", err)
		}
		after, _ := c.Store().LatestUpdateID(ctx)
		if after != before {
			t.Fatalf("failed SetMulti wrote records %d..%d", before, after)
		}
		wantErr(t, c, "a", ErrNotFound)
	})
}

func TestInstanceSetMultiSplits(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		c := newInstance(t, ts.newLog(t), Options{})
		mustUpdate(t, c)
		var items []Item
		for i := 0; i < 20; i++ {
			items = append(items, Item{Key: []byte(fmt.Sprintf("big%02d", i)), Value: bytes.Repeat([]byte{byte(i)}, 128<<10)})
		}
		before, _ := c.Store().LatestUpdateID(ctx)
		last, err := c.SetMulti(ctx, items)
		if err != nil {
			t.Fatal(err)
		}
		if n := last - before; n < 3 {
			t.Fatalf("20 x 128 KiB went into %d records, want a split over several", n)
		}
		other := newInstance(t, c.Store(), Options{})
		mustUpdate(t, other)
		for _, it := range items {
			wantValue(t, c, string(it.Key), it.Value)
			wantValue(t, other, string(it.Key), it.Value)
		}
		if _, err := c.DeleteMulti(ctx, [][]byte{items[0].Key, items[1].Key}); err != nil {
			t.Fatal(err)
		}
		wantErr(t, c, string(items[1].Key), ErrNotFound)
	})
}

func TestInstanceDeleteSharedStateAndRebuild(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		c := newInstance(t, ts.newLog(t), Options{})
		mustUpdate(t, c)
		for i := 0; i < 100; i++ {
			mustSet(t, c, fmt.Sprint("k", i), fmt.Sprint("v", i))
		}
		c2 := newInstance(t, c.Store(), Options{StatePath: c.StatePath()})
		want := contents(c)
		if err := c.DeleteSharedState(); err != nil {
			t.Fatal(err)
		}
		for _, x := range []*Instance{c, c2} {
			if x.Valid() {
				t.Fatal("Valid after DeleteSharedState")
			}
			wantErr(t, x, "k1", ErrInvalidState)
		}
		mustUpdate(t, c2)
		for _, x := range []*Instance{c, c2} {
			if got := contents(x); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after rebuild: %d keys, want %d", len(got), len(want))
			}
		}
		if err := c.CloseSharedState(); err != nil {
			t.Fatal(err)
		}
		wantValue(t, c, "k5", []byte("v5"))
	})
}

func TestInstanceIterationWithConcurrentInserts(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		c := newInstance(t, ts.newLog(t), Options{})
		mustUpdate(t, c)
		for _, k := range []string{"b", "d", "f", "h"} {
			mustSet(t, c, k, k)
		}
		var seen []string
		for k := range c.Keys() {
			seen = append(seen, string(k))
			if string(k) == "d" {
				mustSet(t, c, "a", "behind")  // behind the cursor: not yielded
				mustSet(t, c, "e", "ahead")   // ahead: yielded
				c.Delete(ctx, []byte("f"))    // deleted ahead: not yielded
				mustSet(t, c, "zz", "at end") // yielded
			}
		}
		if want := []string{"b", "d", "e", "h", "zz"}; !slices.Equal(seen, want) {
			t.Fatalf("iteration saw %v, want %v", seen, want)
		}
		var vals []string
		for v := range c.Values() {
			vals = append(vals, string(v))
		}
		if want := []string{"behind", "b", "d", "ahead", "h", "at end"}; !slices.Equal(vals, want) {
			t.Fatalf("Values = %v, want %v", vals, want)
		}
	})
}

func TestInstanceMonotonicAndOutOfOrderApply(t *testing.T) {
	ctx := context.Background()
	store, _ := memstore.New(memstore.Options{})
	defer store.Close()
	a := newInstance(t, store, Options{})
	b := newInstance(t, store, Options{StatePath: a.StatePath()})
	mustUpdate(t, a)
	// Commit two records for one key, then apply them locally in the
	// reverse order: the older must not win.
	rec := func(v string) logstore.Record {
		c, _ := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte("k"), Value: []byte(v)}})
		return logstore.Record{Contents: c, SingleKey: []byte("k")}
	}
	c1, _ := store.Commit(ctx, logstore.LogID{}, []logstore.Record{rec("old")})
	c2, _ := store.Commit(ctx, logstore.LogID{}, []logstore.Record{rec("new")})
	// The newer commit applied first: it does not follow the state's
	// position, so the state catches up from the log in id order.
	if err := a.applyCommitted(ctx, c2, [][]logstore.Item{{{Key: []byte("k"), Value: []byte("new")}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.applyCommitted(ctx, c1, [][]logstore.Item{{{Key: []byte("k"), Value: []byte("old")}}}); err != nil {
		t.Fatal(err)
	}
	wantValue(t, a, "k", []byte("new"))
	mustUpdate(t, b)
	wantValue(t, a, "k", []byte("new"))
	// A delete is not undone by an older record either.
	id3, _ := a.Delete(ctx, []byte("k"))
	if err := b.applyCommitted(ctx, c2, [][]logstore.Item{{{Key: []byte("k"), Value: []byte("new")}}}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, a, "k", ErrNotFound)
	mustUpdate(t, a)
	if a.UpdateID() != id3 {
		t.Fatalf("UpdateID %d, want %d", a.UpdateID(), id3)
	}
}

func TestInstanceCorruptRecordStopsUpdate(t *testing.T) {
	ctx := context.Background()
	store, _ := memstore.New(memstore.Options{})
	defer store.Close()
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	good := mustSet(t, c, "a", "1")
	rec, _ := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte("b"), Value: []byte("2")}})
	rec[len(rec)-1] ^= 1 // checksum mismatch
	commitLast(ctx, store, []logstore.Record{{Contents: rec}})
	commitLast(ctx, store, []logstore.Record{{Contents: rec[:len(rec)-3]}}) // truncated
	other := newInstance(t, store, Options{})
	err := other.Update(ctx)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Update over a corrupt record: %v", err)
	}
	if other.UpdateID() > good {
		t.Fatalf("UpdateID %d moved past the last good record %d", other.UpdateID(), good)
	}
}

func TestInstanceRewriteHistory(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		w := newInstance(t, store, Options{})
		mustUpdate(t, w)
		behind := newInstance(t, store, Options{})
		mustUpdate(t, behind) // stays at id 0 with an empty state
		for round := 0; round < 5; round++ {
			for i := 0; i < 40; i++ {
				mustSet(t, w, fmt.Sprintf("key%02d", i), fmt.Sprintf("v%d.%d", round, i))
			}
			w.SetMulti(ctx, []Item{{Key: []byte("m1"), Value: []byte(fmt.Sprint(round))}, {Key: []byte("m2"), Value: []byte("x")}})
		}
		middle := newInstance(t, store, Options{})
		mustUpdate(t, middle)
		for i := 0; i < 40; i += 3 {
			w.Delete(ctx, []byte(fmt.Sprintf("key%02d", i)))
		}
		mustSet(t, w, "tmp/a", "dropme")
		st, err := w.RewriteHistoryStats(ctx, 0, RewriteOptions{Filter: func(k, v []byte) bool { return !bytes.HasPrefix(k, []byte("tmp/")) }})
		if err != nil {
			t.Fatal(err)
		}
		if st.RecordsAfter >= st.RecordsBefore || st.RecordsAfter > 40+2+1 || st.Horizon == 0 || st.FilteredKeys != 1 {
			t.Fatalf("rewrite stats %+v", st)
		}
		want := contents(w)
		delete(want, "tmp/a")
		for name, x := range map[string]*Instance{"behind": behind, "middle": middle, "fresh": newInstance(t, store, Options{})} {
			mustUpdate(t, x)
			if got := contents(x); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s reader after rewrite: %d keys %v, want %d keys", name, len(got), got, len(want))
			}
		}
		// The writer keeps the filtered key until it rebuilds.
		wantValue(t, w, "tmp/a", []byte("dropme"))
		// The pinned RewriteHistory does the same; a second pass finds
		// nothing more to do.
		if err := w.RewriteHistory(ctx, 0, RewriteOptions{}); err != nil {
			t.Fatal(err)
		}
		st2, err := w.RewriteHistoryStats(ctx, 0, RewriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st2.RecordsAfter != st2.RecordsBefore {
			t.Fatalf("second rewrite changed records: %+v", st2)
		}
	})
}

func TestInstanceSnapshotRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		a := newInstance(t, store, Options{})
		mustUpdate(t, a)
		for i := 0; i < 500; i++ {
			mustSet(t, a, fmt.Sprintf("k%04d", i), fmt.Sprint(i))
		}
		mustUpdate(t, a)
		var buf bytes.Buffer
		id, err := a.WriteSnapshot(&buf)
		if err != nil {
			t.Fatal(err)
		}
		mustSet(t, a, "after", "snapshot")
		b := newInstance(t, store, Options{})
		b2 := newInstance(t, store, Options{StatePath: b.StatePath()})
		mustUpdate(t, b2)
		live := mustSet(t, b2, "k0001", "overwritten-later") // b's old state is in use
		if err := b.LoadSnapshot(ctx, bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		// The live state was ahead of the snapshot: the loaded state was
		// caught up before the swap, so no key moved back.
		if id == 0 || id >= live || b.UpdateID() < live || b2.UpdateID() < live {
			t.Fatalf("UpdateID after load %d/%d, snapshot %d, live state %d", b.UpdateID(), b2.UpdateID(), id, live)
		}
		wantValue(t, b2, "k0001", []byte("overwritten-later"))
		mustUpdate(t, b)
		mustUpdate(t, a)
		if got, want := contents(b2), contents(a); fmt.Sprint(got) != fmt.Sprint(want) || want["k0001"] != "overwritten-later" {
			t.Fatalf("after load and update: %d keys, want %d", len(got), len(want))
		}
		// Damaged snapshots are rejected and the state stays.
		data := buf.Bytes()
		for name, bad := range map[string][]byte{
			"truncated": data[:len(data)/2],
			"bitflip":   flipBit(data, len(data)/3),
			"empty":     nil,
			"foreign":   []byte("not a snapshot at all, definitely not"),
		} {
			if err := b.LoadSnapshot(ctx, bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s snapshot: %v", name, err)
			}
			wantValue(t, b2, "after", []byte("snapshot"))
		}
	})
}

func flipBit(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x10
	return c
}

func TestInstanceDeleteAllHistory(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		a := newInstance(t, store, Options{})
		b := newInstance(t, store, Options{})
		mustUpdate(t, a)
		mustSet(t, a, "x", "1")
		mustUpdate(t, b)
		if err := a.DeleteAllHistory(ctx); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, a)
		// Another machine's filled state does not silently take the new
		// log's content: it refuses until told to adopt it.
		if err := b.Update(ctx); !errors.Is(err, ErrLogMismatch) || !errors.Is(err, ErrRebuildNeeded) {
			t.Fatalf("Update of another machine after DeleteAllHistory: %v, want ErrRebuildNeeded and ErrLogMismatch", err)
		}
		wantValue(t, b, "x", []byte("1"))
		if _, err := b.Set(ctx, []byte("z"), []byte("3")); !errors.Is(err, ErrLogMismatch) {
			t.Fatalf("Set through the mismatched store: %v, want ErrLogMismatch", err)
		}
		adopt := newInstance(t, store, Options{StatePath: b.StatePath(), Rebuild: RebuildAnyLog})
		st, err := adopt.UpdateStats(ctx)
		if err != nil || !errors.Is(st.Rebuilt, ErrLogMismatch) {
			t.Fatalf("Update with RebuildAnyLog: %+v, %v", st, err)
		}
		for _, x := range []*Instance{a, b} {
			wantErr(t, x, "x", ErrNotFound)
			wantErr(t, x, "z", ErrNotFound)
		}
		mustSet(t, a, "y", "2")
		mustUpdate(t, b)
		wantValue(t, b, "y", []byte("2"))
	})
}

func TestTypedMap(t *testing.T) {
	ctx := context.Background()
	store, _ := memstore.New(memstore.Options{})
	defer store.Close()
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	type point struct{ X, Y int }
	jm := NewMap[point](c, JSONCodec[point]{})
	gm := NewMap[[]string](c, GobCodec[[]string]{})
	sm := NewMap[string](c, StringCodec{})
	bm := NewMap[[]byte](c, BytesCodec{})
	jm.Set(ctx, []byte("p"), point{1, 2})
	gm.Set(ctx, []byte("g"), []string{"a", "b"})
	sm.Set(ctx, []byte("s"), "str")
	bm.Set(ctx, []byte("b"), []byte{1})
	if p, err := jm.Get([]byte("p")); err != nil || p != (point{1, 2}) {
		t.Fatalf("json: %v %v", p, err)
	}
	if g, err := gm.Get([]byte("g")); err != nil || !slices.Equal(g, []string{"a", "b"}) {
		t.Fatalf("gob: %v %v", g, err)
	}
	if s, err := sm.Get([]byte("s")); err != nil || s != "str" {
		t.Fatalf("string: %v %v", s, err)
	}
	if _, err := jm.Get([]byte("s")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("decoding a non-JSON value: %v", err)
	}
	if _, err := jm.Get([]byte("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if jm.Instance() != c {
		t.Fatal("Map.Instance is not the instance it wraps")
	}
	if _, err := jm.Delete(ctx, []byte("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := jm.Get([]byte("p")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
}

func TestInstanceRewriteKeepsRecentDeletes(t *testing.T) {
	ctx := context.Background()
	store, _ := memstore.New(memstore.Options{})
	defer store.Close()
	w := newInstance(t, store, Options{})
	mustUpdate(t, w)
	for i := 0; i < 10; i++ {
		mustSet(t, w, fmt.Sprint("k", i), "v")
	}
	mark, _ := w.Delete(ctx, []byte("k1"))
	behind := newInstance(t, store, Options{})
	mustUpdate(t, behind)
	w.Delete(ctx, []byte("k2"))
	mustSet(t, w, "k3", "again")
	st, err := w.RewriteHistoryStats(ctx, 0, RewriteOptions{KeepDeletesAbove: mark})
	if err != nil {
		t.Fatal(err)
	}
	// k1's marker (at mark) is dropped; k2's (above mark) is kept.
	if st.Horizon != mark {
		t.Fatalf("horizon %d, want %d (stats %+v)", st.Horizon, mark, st)
	}
	mustUpdate(t, behind) // at mark: not behind the horizon, no rebuild needed
	if got, want := contents(behind), contents(w); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reader: %v, want %v", got, want)
	}
}

func TestInstanceSnapshotGzipAndExactID(t *testing.T) {
	ctx := context.Background()
	store, _ := memstore.New(memstore.Options{})
	defer store.Close()
	a := newInstance(t, store, Options{})
	mustUpdate(t, a)
	for i := 0; i < 300; i++ {
		mustSet(t, a, fmt.Sprintf("k%03d", i), strings.Repeat("v", i))
	}
	// Not updated since the writes: the snapshot still covers them all, at
	// the latest id.
	var buf bytes.Buffer
	id, err := a.WriteSnapshotOptions(ctx, &buf, SnapshotOptions{Gzip: true})
	if err != nil {
		t.Fatal(err)
	}
	if latest, _ := store.LatestUpdateID(ctx); id != latest {
		t.Fatalf("snapshot id %d, latest %d", id, latest)
	}
	if buf.Len() > 300*300/4 {
		t.Fatalf("gzip snapshot of %d bytes is not compressed", buf.Len())
	}
	b := newInstance(t, store, Options{})
	if err := b.LoadSnapshot(ctx, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got, want := contents(b), contents(a); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("gzip snapshot content differs")
	}
	bad := flipBit(buf.Bytes(), buf.Len()/2)
	if err := b.LoadSnapshot(ctx, bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged gzip snapshot: %v", err)
	}
}

// commitLast commits recs through s, expecting no particular log identity,
// and returns the id of the last record.
func commitLast(ctx context.Context, s logstore.Store, recs []logstore.Record) (uint64, error) {
	res, err := s.Commit(ctx, logstore.LogID{}, recs)
	return res.Last, err
}

// mysqlTestStore returns a MySQL store with opts on a fresh, created
// table, and its pool; closed and dropped at cleanup. It skips the test
// without WHYCACHE_TEST_DSN.
func mysqlTestStore(tb testing.TB, opts MySQLStoreOptions) (*MySQLStore, *sql.DB) {
	tb.Helper()
	db := mysqltest.DB(tb)
	s := mysqlTestStoreOn(tb, db, mysqltest.Table(tb, db), opts)
	if err := s.CreateTable(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s, db
}

// mysqlTestStoreOn returns a MySQL store on an existing pool and table,
// closed at cleanup.
func mysqlTestStoreOn(tb testing.TB, db *sql.DB, table string, opts MySQLStoreOptions) *MySQLStore {
	tb.Helper()
	s, err := NewMySQLStoreOptions(db, table, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, logstore.ErrClosed) {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestTryAppendGet: the read that never waits answers like AppendGet
// where AppendGet would not wait, and ErrWouldWait, with dst unchanged,
// where it would (a state never filled; a writer inside a batch is
// prefixtree's TestReadsReportStoppedWriter).
func TestTryAppendGet(t *testing.T) {
	store, _ := memstore.New(memstore.Options{})
	c := newInstance(t, store, Options{})
	dst := []byte("prefix:")
	if out, err := c.TryAppendGet(dst, []byte("k")); !errors.Is(err, ErrWouldWait) || string(out) != "prefix:" {
		t.Fatalf("TryAppendGet before the first Update: %q, %v; want ErrWouldWait", out, err)
	}
	mustUpdate(t, c)
	if _, err := c.Set(context.Background(), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, want string
		err       error
	}{
		{"k", "prefix:v", nil},
		{"missing", "prefix:", ErrNotFound},
		{"", "prefix:", ErrEmptyKey},
	} {
		out, err := c.TryAppendGet(dst, []byte(tc.key))
		if !errors.Is(err, tc.err) || string(out) != tc.want {
			t.Errorf("TryAppendGet(%q) = %q, %v; want %q, %v", tc.key, out, err, tc.want, tc.err)
		}
	}
}
