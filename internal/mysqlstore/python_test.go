package mysqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/internal/pytest"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/storetest"
)

// pyStore returns a Python-mode store on a fresh table created as Python
// whycache's documentation says, and a writer that writes as Python does.
func pyStore(tb testing.TB, opts Options) (*Store, pytest.Writer) {
	tb.Helper()
	db := mysqltest.DB(tb)
	w := pytest.Writer{DB: db, Table: mysqltest.Table(tb, db)}
	create, err := PythonSchema(w.Table)
	if err != nil {
		tb.Fatal(err)
	}
	w.Create(tb, create)
	opts.Format = FormatPython
	return testStoreOn(tb, db, w.Table, opts), w
}

// pollIDs polls once after after and returns the ids delivered and the
// result.
func pollIDs(t *testing.T, s logstore.Store, after uint64) ([]uint64, logstore.PollResult) {
	t.Helper()
	var ids []uint64
	res, err := s.Poll(context.Background(), logstore.PollRequest{After: logstore.Position{ID: after}}, func(e logstore.Entry) error {
		if e.Nonce != 0 {
			return fmt.Errorf("record %d has nonce %x in Python mode", e.ID, e.Nonce)
		}
		if _, err := logstore.RecordItemCount(e.Contents); err != nil {
			return err
		}
		ids = append(ids, e.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("Poll after %d: %v", after, err)
	}
	return ids, res
}

func TestPythonPollWaitsForHeldInsert(t *testing.T) {
	s, w := pyStore(t, Options{HoleTimeout: time.Hour})
	a := w.Set(t, "a", "1")
	held := w.Hold(t, logstore.Item{Key: []byte("b"), Value: []byte("2")})
	c := w.Set(t, "c", "3") // commits before b, with a higher id
	if !(a < held.ID && held.ID < c) {
		t.Fatalf("ids a=%d b=%d c=%d not in insert order", a, held.ID, c)
	}
	for range 3 { // the hole holds, poll after poll
		ids, res := pollIDs(t, s, 0)
		if fmt.Sprint(ids) != fmt.Sprint([]uint64{a}) || res.Latest.ID != a || res.More {
			t.Fatalf("poll with b's insert open: ids %v, latest %d, more %v; want [%d], %d, false", ids, res.Latest.ID, res.More, a, a)
		}
		if res.HeldBack != c { // what is held back shows as lag
			t.Fatalf("poll with b's insert open: HeldBack %d, want %d", res.HeldBack, c)
		}
	}
	held.Commit(t)
	ids, res := pollIDs(t, s, a)
	if fmt.Sprint(ids) != fmt.Sprint([]uint64{held.ID, c}) || res.Latest.ID != c || res.HeldBack != 0 {
		t.Fatalf("poll after b committed: ids %v, latest %d, held back %d; want [%d %d], %d, 0", ids, res.Latest.ID, res.HeldBack, held.ID, c, c)
	}
}

func TestPythonPollPassesDeadHole(t *testing.T) {
	for _, tc := range []struct {
		name string
		hole func(t *testing.T, w pytest.Writer) uint64 // makes a hole that never fills, returns the id before it
	}{
		{"rolled back insert", func(t *testing.T, w pytest.Writer) uint64 {
			a := w.Set(t, "a", "1")
			w.Hold(t, logstore.Item{Key: []byte("b"), Value: []byte("2")}).Rollback(t)
			return a
		}},
		{"row a newer REPLACE removed", func(t *testing.T, w pytest.Writer) uint64 {
			a := w.Set(t, "a", "1")
			w.Set(t, "k", "old")
			return a
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const timeout = 300 * time.Millisecond
			s, w := pyStore(t, Options{HoleTimeout: timeout})
			a := tc.hole(t, w)
			last := w.Set(t, "k", "new") // removes k's old row in the second case
			start := time.Now()
			ids, res := pollIDs(t, s, a)
			if len(ids) != 0 || res.Latest.ID != a {
				t.Fatalf("first poll: ids %v, latest %d; want none, %d (the hole is new)", ids, res.Latest.ID, a)
			}
			for time.Since(start) < timeout+2*time.Second {
				ids, res = pollIDs(t, s, a)
				if len(ids) > 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if waited := time.Since(start); waited < timeout {
				t.Fatalf("passed the hole after %v, before HoleTimeout %v", waited, timeout)
			}
			if ids[len(ids)-1] != last || res.Latest.ID != last {
				t.Fatalf("after HoleTimeout: ids %v, latest %d; want up to %d", ids, res.Latest.ID, last)
			}
		})
	}
}

// TestPythonReaderNeverSkips polls continuously while Python writers
// commit out of order (some inserts held open for a while, some rolled
// back): every committed record must be delivered exactly once.
func TestPythonReaderNeverSkips(t *testing.T) {
	s, w := pyStore(t, Options{HoleTimeout: 5 * time.Second, PageRows: 7})
	const writers, perWriter = 4, 40
	var mu sync.Mutex
	committed := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				key := []byte(fmt.Sprintf("w%d-%d", g, i))
				item := logstore.Item{Key: key, Value: []byte("v")}
				var id uint64
				switch rand.IntN(5) {
				case 0: // held open while the others commit
					h := w.Hold(t, item)
					time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
					h.Commit(t)
					id = h.ID
				case 1: // rolled back: a hole forever
					w.Hold(t, item).Rollback(t)
					continue
				default:
					id = w.Commit(t, item)
				}
				mu.Lock()
				committed[id] = true
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[uint64]bool{}
	var pos uint64
	finished := false
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			finished = true
		default:
		}
		ids, res := pollIDs(t, s, pos)
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("record %d delivered twice", id)
			}
			seen[id] = true
		}
		if !res.More {
			pos = res.Latest.ID
		} else {
			pos = res.Next.ID
		}
		mu.Lock()
		all := len(seen) == len(committed)
		mu.Unlock()
		if finished && all {
			break
		}
		time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
	}
	for id := range committed {
		if !seen[id] {
			t.Errorf("committed record %d was never delivered (reader at %d)", id, pos)
		}
	}
}

func TestPythonCommit(t *testing.T) {
	s, w := pyStore(t, Options{})
	ctx := context.Background()
	py := w.Set(t, "a", "from python")
	rec := func(items ...logstore.Item) logstore.Record {
		b, err := logstore.AppendRecord(nil, items)
		if err != nil {
			t.Fatal(err)
		}
		r := logstore.Record{Contents: b}
		if len(items) == 1 {
			r.SingleKey = items[0].Key
		}
		return r
	}
	set := func(k, v string) logstore.Item { return logstore.Item{Key: []byte(k), Value: []byte(v)} }

	c, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{rec(set("a", "from go"))})
	if err != nil {
		t.Fatal(err)
	}
	if c.First != py+1 || c.Last != c.First || c.Nonce != 0 || c.Prev != (logstore.Position{ID: py}) {
		t.Fatalf("Commit = %+v; want id %d, nonce 0, Prev {%d 0}", c, py+1, py)
	}
	// Three records in one commit: consecutive ids, the single key of a
	// record written twice only on the last one.
	c3, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{rec(set("b", "1")), rec(set("c", "2"), set("d", "3")), rec(set("b", "4"))})
	if err != nil {
		t.Fatal(err)
	}
	if c3.Last != c3.First+2 {
		t.Fatalf("Commit of 3 records = %+v; want consecutive ids", c3)
	}
	// An empty value cannot be written in Python's framing.
	before := w.Replay(t)
	if _, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{rec(set("e", "5")), rec(set("empty", ""))}); !errors.Is(err, logstore.ErrNotRepresentable) {
		t.Fatalf("Commit of an empty value: %v; want ErrNotRepresentable", err)
	}
	if after := w.Replay(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused commit changed the table: %v -> %v", before, after)
	}
	// What Python reads: its framing, a's Python row replaced by Go's.
	want := map[string]string{"a": "from go", "b": "4", "c": "2", "d": "3"}
	if got := w.Replay(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Python's replay = %v, want %v", got, want)
	}
	rows, err := w.DB.Query("SELECT id, COALESCE(single_key, '<NULL>') FROM `" + w.Table + "` ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id uint64
		var k string
		if err := rows.Scan(&id, &k); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", id-py, k))
	}
	if want := "[1:a 2:<NULL> 3:<NULL> 4:b]"; fmt.Sprint(got) != want {
		t.Fatalf("rows (id-%d:single_key) = %v, want %s", py, got, want)
	}
}

func TestPythonLayouts(t *testing.T) {
	ctx := context.Background()
	t.Run("CreateTable makes Python's table", func(t *testing.T) {
		db := mysqltest.DB(t)
		table := mysqltest.Table(t, db)
		s := testStoreOn(t, db, table, Options{Format: FormatPython})
		for range 2 { // only if missing
			if err := s.CreateTable(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var name, create string
		if err := db.QueryRow("SHOW CREATE TABLE `"+table+"`").Scan(&name, &create); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"`id` bigint(20) NOT NULL AUTO_INCREMENT", "`single_key` varbinary(1024) DEFAULT NULL",
			"`contents` mediumblob NOT NULL", "PRIMARY KEY (`id`)", "UNIQUE KEY `single_key` (`single_key`)", "ENGINE=InnoDB"} {
			if !strings.Contains(create, want) {
				t.Errorf("SHOW CREATE TABLE lacks %q:\n%s", want, create)
			}
		}
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?", table+"%").Scan(&n); err != nil || n != 1 {
			t.Fatalf("tables named %s*: %d (%v); want only the log table", table, n, err)
		}
		w := pytest.Writer{DB: db, Table: table}
		w.Set(t, "k", "v")
		if ids, _ := pollIDs(t, s, 0); len(ids) != 1 {
			t.Fatalf("poll after a Python write: %v", ids)
		}
	})
	t.Run("a Go log is refused", func(t *testing.T) {
		goStore, db := testStore(t, Options{})
		s := testStoreOn(t, db, goStore.Table(), Options{Format: FormatPython})
		_, err := s.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
		if !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), "without --format python") {
			t.Fatalf("Poll of a Go log in Python mode: %v; want ErrNoLog naming the mode", err)
		}
		if err := s.CreateTable(ctx); !errors.Is(err, logstore.ErrNoLog) {
			t.Fatalf("CreateTable on a Go log in Python mode: %v; want ErrNoLog", err)
		}
		if _, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: pytest.Record(t, logstore.Item{Key: []byte("k"), Value: []byte("v")})}}); !errors.Is(err, logstore.ErrNoLog) {
			t.Fatalf("Commit to a Go log in Python mode: %v; want ErrNoLog", err)
		}
	})
	t.Run("a missing table is not created by reads", func(t *testing.T) {
		db := mysqltest.DB(t)
		s := testStoreOn(t, db, mysqltest.Table(t, db), Options{Format: FormatPython})
		if _, err := s.LatestUpdateID(ctx); !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), "--format python init-schema") {
			t.Fatalf("LatestUpdateID of a missing table: %v; want ErrNoLog saying how to create it", err)
		}
	})
	t.Run("a Go record in a Python table", func(t *testing.T) {
		s, w := pyStore(t, Options{})
		goRec, err := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte("k"), Value: []byte("v")}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.DB.Exec("INSERT INTO `"+w.Table+"` (contents) VALUES (?)", goRec); err != nil {
			t.Fatal(err)
		}
		_, err = s.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
		if !errors.Is(err, logstore.ErrCorrupt) {
			t.Fatalf("Poll over a Go-framed row: %v; want ErrCorrupt", err)
		}
		if err := s.Check(ctx); !errors.Is(err, logstore.ErrCorrupt) {
			t.Fatalf("Check over a Go-framed row: %v; want ErrCorrupt", err)
		}
	})
}

// goView shows a Python-mode store's records as the conformance suite
// committed them, so the suite, which compares the bytes it committed,
// can run on it. The store holds records in the Python framing: every
// Go-framed record the suite commits has one item and a value, so its
// Go framing is exactly what the Python framing decodes to; the suite's
// other contents are opaque bytes, which the view commits as the value of
// a record of one item of key opaqueKey and unwraps when it reads them.
type goView struct{ *Store }

// opaqueKey marks a record that carries opaque bytes of the suite.
const opaqueKey = "storetest opaque contents"

// fromSuite returns the record the view commits for the suite's contents.
func fromSuite(c []byte) []byte {
	if _, err := logstore.RecordItemCount(c); err == nil && isGoFramed(c) {
		return c
	}
	b, err := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte(opaqueKey), Value: c}})
	if err != nil {
		panic(err) // test code: the suite's contents are small
	}
	return b
}

// toGo returns the stored record c as the suite committed it.
func toGo(c []byte) ([]byte, error) {
	var items []logstore.Item
	if err := logstore.DecodeRecord(c, func(it logstore.Item) error {
		items = append(items, it)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(items) == 1 && string(items[0].Key) == opaqueKey {
		return items[0].Value, nil
	}
	return logstore.AppendRecord(nil, items)
}

func (v goView) Commit(ctx context.Context, expect logstore.LogID, records []logstore.Record) (logstore.Committed, error) {
	recs := make([]logstore.Record, len(records))
	for i, r := range records {
		recs[i] = logstore.Record{Contents: fromSuite(r.Contents), SingleKey: r.SingleKey}
	}
	return v.Store.Commit(ctx, expect, recs)
}

func (v goView) ReadUpdates(ctx context.Context, low, high uint64, fn func(uint64, []byte) error) error {
	return v.Store.ReadUpdates(ctx, low, high, func(id uint64, c []byte) error {
		g, err := toGo(c)
		if err != nil {
			return err
		}
		return fn(id, g)
	})
}

func (v goView) Poll(ctx context.Context, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	return v.Store.Poll(ctx, req, func(e logstore.Entry) error {
		g, err := toGo(e.Contents)
		if err != nil {
			return err
		}
		e.Contents = g
		return fn(e)
	})
}

// Compact counts the bytes of the records as the suite sees them.
func (v goView) Compact(ctx context.Context, limit, horizon uint64, fn logstore.CompactFunc) (logstore.CompactStats, error) {
	var before, after uint64
	st, err := v.Store.Compact(ctx, limit, horizon, func(id uint64, c []byte) ([]byte, bool, error) {
		g, err := toGo(c)
		if err != nil {
			return nil, false, err
		}
		out, keep, err := fn(id, g)
		if err != nil {
			return out, keep, err
		}
		before += uint64(len(g))
		switch {
		case !keep:
		case bytes.Equal(out, g):
			after += uint64(len(g))
			out = c // unchanged
		default:
			after += uint64(len(out))
			out = fromSuite(out)
		}
		return out, keep, err
	})
	st.BytesBefore, st.BytesAfter = before, after
	return st, err
}

func TestPythonConformance(t *testing.T) {
	mysqltest.DSN(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) (logstore.Store, func(t *testing.T) logstore.Store) {
			s, w := pyStore(t, Options{HoleTimeout: 2 * time.Second})
			open := func(t *testing.T) logstore.Store {
				return goView{testStoreOn(t, mysqltest.DB(t), w.Table, Options{Format: FormatPython, HoleTimeout: 2 * time.Second})}
			}
			return goView{s}, open
		},
		SingleKeyReplaces:      true,
		SingleKeyAcrossCommits: true,
		NoNonces:               true,
		Skip: map[string]string{
			"CompactHorizon": "a Python table has no place for a compaction horizon: Compact refuses to raise it (TestPythonCompactHorizon)",
			"Reset":          "a Python table's identity is derived from the server, database and table, so Reset cannot change it",
			"ConcurrentCommits": "its poller reads LatestUpdateID (MAX(id)) and ReadUpdates up to it, as Python's reader does, which skips ids that commit after a higher one; " +
				"Poll waits for them (TestPythonReaderNeverSkips)",
		},
	})
}

// TestPythonPollBackwards: with nonces 0, a log that went backwards is
// seen only when its highest id is below the reader's position.
func TestPythonPollBackwards(t *testing.T) {
	s, w := pyStore(t, Options{})
	w.Set(t, "a", "1")
	b := w.Set(t, "b", "2")
	for _, tc := range []struct {
		after uint64
		want  logstore.Verdict
	}{{0, logstore.VerdictNone}, {b - 1, logstore.VerdictMatch}, {b, logstore.VerdictMatch}, {b + 1, logstore.VerdictAhead}} {
		ids, res := pollIDs(t, s, tc.after)
		if res.Verdict != tc.want {
			t.Errorf("Poll after %d: verdict %v, want %v", tc.after, res.Verdict, tc.want)
		}
		if tc.want == logstore.VerdictAhead && (len(ids) != 0 || res.Latest.ID != b) {
			t.Errorf("Poll ahead of the log: ids %v, latest %d; want none, %d", ids, res.Latest.ID, b)
		}
	}
}

func TestPythonCompactHorizon(t *testing.T) {
	s, w := pyStore(t, Options{})
	w.Set(t, "a", "1")
	_, err := s.Compact(context.Background(), 1, 1, func(id uint64, c []byte) ([]byte, bool, error) { return nil, false, nil })
	if !errors.Is(err, logstore.ErrNotRepresentable) {
		t.Fatalf("Compact raising the horizon: %v; want ErrNotRepresentable", err)
	}
	if got := w.Replay(t); got["a"] != "1" {
		t.Fatalf("a refused Compact changed the log: %v", got)
	}
}

// TestPythonLateRowFound: an insert held open longer than HoleTimeout
// after a later id was seen is passed as a hole; when it commits, a later
// poll (within a HoleTimeout or two) says so with a mismatch naming the
// record, instead of every reader that passed it lacking it forever. The
// store then starts over: a poll from the start delivers the record, and
// the next polls match. Holes that never fill (a rolled-back insert, a
// row a newer REPLACE removed) pass without a mismatch.
func TestPythonLateRowFound(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s, w := pyStore(t, Options{HoleTimeout: timeout})
	a := w.Set(t, "a", "1")
	held := w.Hold(t, logstore.Item{Key: []byte("b"), Value: []byte("2")})
	w.Hold(t, logstore.Item{Key: []byte("x"), Value: []byte("rolled back")}).Rollback(t)
	w.Set(t, "k", "old")
	c := w.Set(t, "k", "new") // removes k's old row: a hole that never fills
	pollPast(t, s, a, c, timeout)
	for start := time.Now(); time.Since(start) < 4*timeout; time.Sleep(20 * time.Millisecond) {
		if _, res := pollIDs(t, s, c); res.Verdict != logstore.VerdictMatch {
			t.Fatalf("polls after holes that never fill: verdict %v (%s)", res.Verdict, res.Detail)
		}
	}
	held.Commit(t)
	waitLateRow(t, s, c, held.ID, timeout)
	ids, _ := pollIDs(t, s, 0)
	if fmt.Sprint(ids) != fmt.Sprint([]uint64{a, held.ID, c}) {
		t.Fatalf("poll from the start after the mismatch: ids %v, want [%d %d %d]", ids, a, held.ID, c)
	}
	if _, res := pollIDs(t, s, c); res.Verdict != logstore.VerdictMatch {
		t.Fatalf("poll after starting over: verdict %v (%s)", res.Verdict, res.Detail)
	}
}

// TestPythonLateRowFoundAfterRestart: the process that passed the hole
// exits; a new one (a new store) whose state is past the hole finds the
// row that commits there later all the same, from the holes below its
// position at its first poll.
func TestPythonLateRowFoundAfterRestart(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s, w := pyStore(t, Options{HoleTimeout: timeout})
	a := w.Set(t, "a", "1")
	held := w.Hold(t, logstore.Item{Key: []byte("b"), Value: []byte("2")})
	w.Set(t, "k", "old")
	c := w.Set(t, "k", "new") // removes k's old row: a hole that never fills
	pollPast(t, s, a, c, timeout)
	restarted := testStoreOn(t, mysqltest.DB(t), w.Table, Options{Format: FormatPython, HoleTimeout: timeout})
	for start := time.Now(); time.Since(start) < 4*timeout; time.Sleep(20 * time.Millisecond) {
		if _, res := pollIDs(t, restarted, c); res.Verdict != logstore.VerdictMatch {
			t.Fatalf("polls of the new store before the insert commits: verdict %v (%s)", res.Verdict, res.Detail)
		}
	}
	held.Commit(t)
	waitLateRow(t, restarted, c, held.ID, timeout)
}

// pollPast polls s from after until it delivers want, past the holes
// between them (after HoleTimeout timeout); each poll must match.
func pollPast(t *testing.T, s logstore.Store, after, want uint64, timeout time.Duration) {
	t.Helper()
	for start := time.Now(); time.Since(start) < timeout+5*time.Second; time.Sleep(20 * time.Millisecond) {
		if ids, res := pollIDs(t, s, after); len(ids) > 0 && ids[len(ids)-1] == want {
			if res.Verdict != logstore.VerdictMatch {
				t.Fatalf("poll passing the holes: verdict %v (%s)", res.Verdict, res.Detail)
			}
			return
		}
	}
	t.Fatalf("the holes after %d were not passed", after)
}

// waitLateRow polls s from after until a poll says record late was
// committed in a passed hole: a mismatch naming it.
func waitLateRow(t *testing.T, s logstore.Store, after, late uint64, timeout time.Duration) {
	t.Helper()
	var res logstore.PollResult
	for start := time.Now(); time.Since(start) < 4*timeout+5*time.Second; time.Sleep(20 * time.Millisecond) {
		if _, res = pollIDs(t, s, after); res.Verdict != logstore.VerdictMatch {
			break
		}
	}
	if res.Verdict != logstore.VerdictMismatch || !strings.Contains(res.Detail, fmt.Sprintf("record %d ", late)) {
		t.Fatalf("after the held insert committed in a passed hole: verdict %v, detail %q; want a mismatch naming record %d", res.Verdict, res.Detail, late)
	}
}
