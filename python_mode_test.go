package whycache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/mysqlstore"
	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/internal/pytest"
	"github.com/whycache/whycache/logstore"
)

// pythonModeStore returns a Python-mode MySQLStore on a fresh table made
// as Python whycache's documentation says, and a writer that writes to it
// as Python whycache does.
func pythonModeStore(t *testing.T, holeTimeout time.Duration) (*MySQLStore, pytest.Writer) {
	t.Helper()
	db := mysqltest.DB(t)
	w := pytest.Writer{DB: db, Table: mysqltest.Table(t, db)}
	create, err := mysqlstore.PythonSchema(w.Table)
	if err != nil {
		t.Fatal(err)
	}
	w.Create(t, create)
	return mysqlTestStoreOn(t, db, w.Table, MySQLStoreOptions{Format: FormatPython, HoleTimeout: holeTimeout}), w
}

// testPickle returns a pickle Python made (testdata/pickle/python).
func testPickle(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pickle", "python", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPythonModeMixedFleet: Python processes write pickled values, Go
// reads them byte for byte and through PickleCodec, and what Go writes
// Python reads (Python's replay, and, when python3 is installed, Python's
// own struct and pickle modules).
func TestPythonModeMixedFleet(t *testing.T) {
	store, w := pythonModeStore(t, time.Second)
	ctx := context.Background()
	dict := testPickle(t, "dict_nested.p4.pickle") // {'a': {'b': [1, 2, {'c': None}]}, 'd': (True, 'x')}
	str := testPickle(t, "str_a.p3.pickle")        // 'a'
	w.Commit(t, logstore.Item{Key: []byte("user:1"), Value: dict})
	w.Commit(t, logstore.Item{Key: []byte("greeting"), Value: str}, logstore.Item{Key: []byte("gone"), Value: str})
	w.Delete(t, "gone")

	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	wantValue(t, c, "user:1", dict)
	wantValue(t, c, "greeting", str)
	wantErr(t, c, "gone", ErrNotFound)
	m := NewMap[any](c, PickleCodec[any]{})
	if v, err := m.Get([]byte("greeting")); err != nil || v != "a" {
		t.Fatalf("Map.Get(greeting) = %#v, %v; want \"a\"", v, err)
	}

	// Go writes; the state holds it at once and Python reads it.
	if _, err := m.Set(ctx, []byte("go:1"), map[string]any{"n": int64(7), "l": []any{"x", 1.5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, []byte("user:1"), str); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, []byte("greeting")); err != nil {
		t.Fatal(err)
	}
	latest, err := store.LatestUpdateID(ctx)
	if err != nil || c.UpdateID() != latest {
		t.Fatalf("UpdateID %d after the writes, latest %d (%v): the commits were not applied from memory", c.UpdateID(), latest, err)
	}
	replay := w.Replay(t)
	if got := contents(c); !reflect.DeepEqual(got, replay) {
		t.Fatalf("Go state = %q, Python's replay %q", got, replay)
	}
	if len(replay) != 2 || replay["user:1"] != string(str) {
		t.Fatalf("Python's replay = %q, want user:1 and go:1", replay)
	}
	// The pickle of a map has its items in Go's map order: compare values.
	if v, err := (PickleCodec[any]{}).Decode([]byte(replay["go:1"])); err != nil || !reflect.DeepEqual(v, map[string]any{"n": int64(7), "l": []any{"x", 1.5}}) {
		t.Fatalf("go:1 in Python's replay decodes to %#v, %v", v, err)
	}
	pythonReads(t, w, map[string]string{"user:1": "'a'", "go:1": "{'l': ['x', 1.5], 'n': 7}"})
}

// pythonReadsScript is Python whycache's reader (_decode_update_contents
// and _apply_update_local with pickle.loads) over the rows given as files
// named by id, printing the state as {key: repr(value)} with dicts sorted.
const pythonReadsScript = `
import json, os, pickle, struct, sys
def decode(c):
    n = struct.unpack('>L', c[:4])[0]; off = 4
    for _ in range(n):
        kl, vl = struct.unpack('>QQ', c[off:off+16]); off += 16
        k = c[off:off+kl]; off += kl
        v = c[off:off+vl]; off += vl
        yield k, v
def rep(x):
    if isinstance(x, dict):
        return '{' + ', '.join(repr(k) + ': ' + rep(x[k]) for k in sorted(x)) + '}'
    return repr(x)
state = {}
d = sys.argv[1]
for name in sorted(os.listdir(d), key=int):
    for k, v in decode(open(os.path.join(d, name), 'rb').read()):
        if v == b'':
            state.pop(k, None)
        else:
            state[k] = pickle.loads(v)
print(json.dumps({k.decode(): rep(v) for k, v in state.items()}))
`

// pythonReads runs Python whycache's reader, in python3, over the rows of
// w's table, and compares the state it ends with to want (key -> repr).
// It skips when python3 is not installed.
func pythonReads(t *testing.T, w pytest.Writer, want map[string]string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 is not installed: Python's own reader not run")
		return
	}
	dir := t.TempDir()
	rows, err := w.DB.Query("SELECT id, contents FROM `" + w.Table + "` ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uint64
		var c []byte
		if err := rows.Scan(&id, &c); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(id)), c, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", pythonReadsScript, dir).Output()
	if err != nil {
		t.Fatalf("python3 reader: %v", err)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python3 reader printed %q: %v", out, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Python whycache's reader ends with %q, want %q", got, want)
	}
}

// TestPythonModeSetBehindHeldInsert: a Go Set whose id lies above a
// Python insert still open cannot claim its id before that insert is
// resolved; it waits for it and then holds both.
func TestPythonModeSetBehindHeldInsert(t *testing.T) {
	store, w := pythonModeStore(t, 10*time.Second)
	ctx := context.Background()
	w.Set(t, "a", "1")
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	held := w.Hold(t, logstore.Item{Key: []byte("held"), Value: []byte("python")})
	go func() {
		time.Sleep(300 * time.Millisecond)
		held.Commit(t)
	}()
	id, err := c.Set(ctx, []byte("b"), []byte("go"))
	if err != nil {
		t.Fatalf("Set above an open insert: %v", err)
	}
	if id != held.ID+1 || c.UpdateID() != id {
		t.Fatalf("Set = %d, UpdateID %d; want %d for both", id, c.UpdateID(), held.ID+1)
	}
	wantValue(t, c, "held", []byte("python"))
	wantValue(t, c, "b", []byte("go"))
}

func TestPythonModeRefusals(t *testing.T) {
	store, w := pythonModeStore(t, time.Second)
	ctx := context.Background()
	w.Set(t, "a", "1")
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	latest := c.UpdateID()
	if _, err := c.SetMulti(ctx, []Item{{Key: []byte("x"), Value: []byte("1")}, {Key: []byte("empty")}}); !errors.Is(err, ErrNotRepresentable) {
		t.Fatalf("SetMulti with an empty value: %v; want ErrNotRepresentable", err)
	}
	// A transaction of several records could be seen in part: refused.
	big := bytes.Repeat([]byte("v"), 4096)
	if _, err := c.Txn(ctx, func(tx *Txn) error {
		for i := range 600 { // about 2.4 MB, above one record of 1 MiB
			if err := tx.Set([]byte(fmt.Sprintf("t%03d", i)), big); err != nil {
				return err
			}
		}
		return nil
	}); !errors.Is(err, ErrNotRepresentable) {
		t.Fatalf("Txn of several records in Python mode: %v; want ErrNotRepresentable", err)
	}
	if _, err := c.Txn(ctx, func(tx *Txn) error { return tx.Set([]byte("t"), []byte("1")) }); err != nil {
		t.Fatalf("Txn of one record in Python mode: %v", err)
	}
	latest = c.UpdateID()
	if err := c.RewriteHistory(ctx, 0, RewriteOptions{Filter: func(k, v []byte) bool { return false }}); !errors.Is(err, ErrNotRepresentable) {
		t.Fatalf("RewriteHistory with a filter: %v; want ErrNotRepresentable", err)
	}
	if got, err := store.LatestUpdateID(ctx); err != nil || got != latest {
		t.Fatalf("latest id %d (%v) after refused writes, want %d", got, err, latest)
	}
	if got := w.Replay(t); !reflect.DeepEqual(got, map[string]string{"a": "1", "t": "1"}) {
		t.Fatalf("log after refused writes: %v", got)
	}
	// Outside Python mode the table is refused, naming the mode.
	goStore := mysqlTestStoreOn(t, w.DB, w.Table, MySQLStoreOptions{})
	g, err := Open(goStore, Options{StatePath: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Update(ctx); err == nil || !errors.Is(err, logstore.ErrNoLog) || !containsAll(err.Error(), "--format python") {
		t.Fatalf("Update of a Python table in Go mode: %v; want ErrNoLog naming --format python", err)
	}
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestPythonModeRewrite: a history rewrite keeps Python's framing and
// ids, and every delete marker nothing supersedes, so a Go reader and a
// Python reader that had a deleted key see it go, and fresh readers of
// both end where a full replay does.
func TestPythonModeRewrite(t *testing.T) {
	store, w := pythonModeStore(t, time.Second)
	ctx := context.Background()
	item := func(k, v string) logstore.Item { return logstore.Item{Key: []byte(k), Value: []byte(v)} }
	for i := range 20 {
		// Multi-key records: not removed by REPLACE, so the rewrite has
		// work to do.
		w.Commit(t, item(fmt.Sprintf("k%02d", i), "v1"), item(fmt.Sprintf("k%02d", (i+1)%20), "v2"))
	}
	early := newInstance(t, store, Options{})
	mustUpdate(t, early) // holds k00..k19
	for i := range 5 {
		w.Delete(t, fmt.Sprintf("k%02d", i))
	}
	w.Commit(t, item("k10", "v3"), logstore.Item{Key: []byte("k11"), Delete: true})
	full := w.Replay(t)

	writer := newInstance(t, store, Options{})
	mustUpdate(t, writer)
	st, err := writer.RewriteHistoryStats(ctx, 0, RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.RecordsAfter >= st.RecordsBefore || st.Horizon != 0 {
		t.Fatalf("rewrite stats %+v: want fewer records and no horizon", st)
	}
	if got := w.Replay(t); !reflect.DeepEqual(got, full) {
		t.Fatalf("Python's replay after the rewrite = %v, want %v", got, full)
	}
	mustUpdate(t, early) // tails the rewritten log: must lose the deleted keys
	if got := contents(early); !reflect.DeepEqual(got, full) {
		t.Fatalf("a reader from before the deletes ends with %v, want %v", got, full)
	}
	// A fresh reader meets the ids of the dropped records as holes: it
	// passes them once HoleTimeout has gone by since it first saw them.
	fresh := newInstance(t, store, Options{})
	latest, err := store.LatestUpdateID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for mustUpdate(t, fresh); fresh.UpdateID() < latest && time.Since(start) < 5*time.Second; mustUpdate(t, fresh) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := contents(fresh); !reflect.DeepEqual(got, full) {
		t.Fatalf("a fresh reader ends with %v, want %v", got, full)
	}
	// A Python reader that applied the log before the rewrite keeps
	// reading from its position: the delete markers are still there.
	var deletes int
	if err := store.ReadUpdates(ctx, 1, ^uint64(0), func(id uint64, c []byte) error {
		return logstore.DecodePythonRecord(c, func(it logstore.Item) error {
			if it.Delete {
				deletes++
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if deletes != 6 {
		t.Fatalf("%d delete markers after the rewrite, want the 6 nothing supersedes", deletes)
	}
}

// TestPythonModeRewriteStopsBelowHole: a rewrite never reaches past an id
// that may still commit (a record landing between its passes would be
// dropped as superseded): its limit stays below an open insert.
func TestPythonModeRewriteStopsBelowHole(t *testing.T) {
	store, w := pythonModeStore(t, 10*time.Second)
	ctx := context.Background()
	a := w.Set(t, "k", "old")
	w.Set(t, "x", "1")
	open := w.Hold(t, logstore.Item{Key: []byte("k"), Value: []byte("new")}, logstore.Item{Key: []byte("y"), Value: []byte("2")})
	w.Set(t, "z", "3")
	c := newInstance(t, store, Options{})
	st, err := c.RewriteHistoryStats(ctx, 0, RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Limit >= open.ID || st.Limit < a {
		t.Fatalf("rewrite limit %d with an insert open at %d; want below it", st.Limit, open.ID)
	}
	open.Commit(t)
	mustUpdate(t, c)
	want := map[string]string{"k": "new", "x": "1", "y": "2", "z": "3"}
	if got := contents(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("state after the open insert committed = %v, want %v", got, want)
	}
	if got := w.Replay(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("Python's replay = %v, want %v", got, want)
	}
}

// TestPythonModeStatsShowHeldBack: while a reader waits at a hole (an
// insert held open below a later one), Stats reports the held-back records
// as lag instead of saying the state is up to date; when the insert
// commits, the lag is gone.
func TestPythonModeStatsShowHeldBack(t *testing.T) {
	store, w := pythonModeStore(t, time.Hour)
	ctx := context.Background()
	w.Set(t, "a", "1")
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	held := w.Hold(t, logstore.Item{Key: []byte("b"), Value: []byte("2")})
	w.Set(t, "c", "3")
	last := w.Set(t, "d", "4")
	mustUpdate(t, c) // stops below the hole
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.UpdateID >= held.ID || st.LatestID != last || st.LagRecords != last-st.UpdateID {
		t.Fatalf("Stats at a hole: update id %d, latest %d, lag %d records; want below %d, %d, %d",
			st.UpdateID, st.LatestID, st.LagRecords, held.ID, last, last-st.UpdateID)
	}
	held.Commit(t)
	mustUpdate(t, c)
	st, err = c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.UpdateID != last || st.LagRecords != 0 {
		t.Fatalf("Stats after the insert committed: update id %d, lag %d records; want %d, 0", st.UpdateID, st.LagRecords, last)
	}
	wantValue(t, c, "b", []byte("2"))
}

// TestPythonModeLateInsertRebuilds: a Python process holds an insert open
// longer than HoleTimeout while others commit after it; the machine's
// Update passes the hole (it cannot wait forever), and when the insert
// commits, a later Update rebuilds the state from the log, saying why,
// so the machine holds the record like every machine that read it later.
// Before, the record stayed missing on this machine with every Update
// succeeding.
func TestPythonModeLateInsertRebuilds(t *testing.T) {
	const timeout = 200 * time.Millisecond
	store, w := pythonModeStore(t, timeout)
	ctx := context.Background()
	w.Set(t, "a", "1")
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	held := w.Hold(t, logstore.Item{Key: []byte("late"), Value: []byte("python")})
	last := w.Set(t, "after", "2")
	for start := time.Now(); c.UpdateID() < last; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > timeout+5*time.Second {
			t.Fatalf("Update did not pass the hole of the held insert: update id %d, want %d", c.UpdateID(), last)
		}
		mustUpdate(t, c)
	}
	held.Commit(t)
	var rebuilt error
	for start := time.Now(); rebuilt == nil && time.Since(start) < 4*timeout+5*time.Second; time.Sleep(20 * time.Millisecond) {
		st, err := c.UpdateStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rebuilt = st.Rebuilt
	}
	if !errors.Is(rebuilt, ErrLogDiverged) || !strings.Contains(rebuilt.Error(), fmt.Sprintf("record %d ", held.ID)) {
		t.Fatalf("Update after the held insert committed: rebuilt %v; want ErrLogDiverged naming record %d", rebuilt, held.ID)
	}
	wantValue(t, c, "late", []byte("python"))
	wantValue(t, c, "after", []byte("2"))
	if c.UpdateID() != last {
		t.Fatalf("UpdateID after the rebuild = %d, want %d", c.UpdateID(), last)
	}
}

// TestPythonModeLateInsertOwedAcrossProcesses: a late row is shown once, by
// the store (the process) that passed its hole. A machine that may not
// rebuild (RebuildNever) refuses; a new process on the same state, whose
// store never passed that hole, must refuse too, and not follow the table
// from there with the record missing; a process that may rebuild does, and
// its state then follows the table again. (Before, the new process's
// Update succeeded and the machine lacked the record for good; the same
// held after a rebuild that did not finish.)
func TestPythonModeLateInsertOwedAcrossProcesses(t *testing.T) {
	const timeout = 200 * time.Millisecond
	store, w := pythonModeStore(t, timeout)
	ctx := context.Background()
	w.Set(t, "a", "1")
	c := newInstance(t, store, Options{Rebuild: RebuildNever})
	mustUpdate(t, c)
	held := w.Hold(t, logstore.Item{Key: []byte("late"), Value: []byte("python")})
	last := w.Set(t, "after", "2")
	for start := time.Now(); c.UpdateID() < last; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > timeout+5*time.Second {
			t.Fatalf("Update did not pass the hole of the held insert: update id %d, want %d", c.UpdateID(), last)
		}
		mustUpdate(t, c)
	}
	held.Commit(t)
	var err error
	for start := time.Now(); err == nil && time.Since(start) < 4*timeout+5*time.Second; time.Sleep(20 * time.Millisecond) {
		err = c.Update(ctx)
	}
	if !errors.Is(err, ErrRebuildNeeded) || !errors.Is(err, ErrLogDiverged) {
		t.Fatalf("Update with RebuildNever after the held insert committed: %v; want ErrRebuildNeeded, ErrLogDiverged", err)
	}
	path := c.StatePath()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// A new process: a store of its own, which never passed the hole.
	again := mysqlTestStoreOn(t, w.DB, w.Table, MySQLStoreOptions{Format: FormatPython, HoleTimeout: timeout})
	d := newInstance(t, again, Options{StatePath: path, Rebuild: RebuildNever})
	if err := d.Update(ctx); !errors.Is(err, ErrRebuildNeeded) || !errors.Is(err, ErrLogDiverged) {
		t.Fatalf("Update of a new process with RebuildNever on the state that lacks record %d: %v; want ErrRebuildNeeded, ErrLogDiverged", held.ID, err)
	}
	d.Close()
	e := newInstance(t, again, Options{StatePath: path})
	st, err := e.UpdateStats(ctx)
	if err != nil || !errors.Is(st.Rebuilt, ErrLogDiverged) {
		t.Fatalf("Update of a process that may rebuild: rebuilt %v, %v; want ErrLogDiverged", st.Rebuilt, err)
	}
	wantValue(t, e, "late", []byte("python"))
	wantValue(t, e, "after", []byte("2"))
	if st, err := e.UpdateStats(ctx); err != nil || st.Rebuilt != nil {
		t.Fatalf("Update after the rebuild: rebuilt %v, %v; want the state to follow the table again", st.Rebuilt, err)
	}
}
