package mysqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/whycache/whycache/internal/mariadbtest"
	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/storetest"
)

// testSchema is schema.sql, which the whycache package embeds and gives
// to New; TestMain reads it from the module root.
var testSchema Schema

func TestMain(m *testing.M) {
	b, err := os.ReadFile(filepath.Join("..", "..", "schema.sql"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mysqlstore tests: read the schema:", err)
		os.Exit(2)
	}
	testSchema = Schema(b)
	os.Exit(mariadbtest.Main(m))
}

// commitLast commits recs and returns the id of the last one.
func commitLast(ctx context.Context, s logstore.Store, recs []logstore.Record) (uint64, error) {
	res, err := s.Commit(ctx, logstore.LogID{}, recs)
	return res.Last, err
}

// testStore returns a store with opts on a fresh, created table, its
// pool and table name; closed and dropped at cleanup.
func testStore(tb testing.TB, opts Options) (*Store, *sql.DB) {
	tb.Helper()
	db := mysqltest.DB(tb)
	table := mysqltest.Table(tb, db)
	s := testStoreOn(tb, db, table, opts)
	if err := s.CreateTable(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s, db
}

// testStoreOn returns a store on an existing pool and table, closed
// at cleanup.
func testStoreOn(tb testing.TB, db *sql.DB, table string, opts Options) *Store {
	tb.Helper()
	s, err := New(db, table, testSchema, opts)
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

// readAll returns every record in [low, high] as id -> contents, and
// fails the test if they come out of order.
func readAll(t testing.TB, s logstore.Store, low, high uint64) ([]uint64, [][]byte) {
	t.Helper()
	var ids []uint64
	var contents [][]byte
	err := s.ReadUpdates(context.Background(), low, high, func(id uint64, c []byte) error {
		if n := len(ids); n > 0 && id <= ids[n-1] {
			return fmt.Errorf("record %d after %d", id, ids[n-1])
		}
		ids = append(ids, id)
		contents = append(contents, bytes.Clone(c))
		return nil
	})
	if err != nil {
		t.Fatalf("ReadUpdates(%d, %d): %v", low, high, err)
	}
	return ids, contents
}

func TestConformance(t *testing.T) {
	mysqltest.DSN(t) // skip once, not in every subtest
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) (logstore.Store, func(t *testing.T) logstore.Store) {
			s, _ := testStore(t, Options{})
			open := func(t *testing.T) logstore.Store {
				// Another pool, as another process would have.
				return testStoreOn(t, mysqltest.DB(t), s.Table(), Options{})
			}
			return s, open
		},
		SingleKeyReplaces: true,
		Backup: func(t *testing.T, s logstore.Store) func(t *testing.T) {
			ms := s.(*Store)
			return mysqltest.CopyAside(t, ms.db, ms.Table())
		},
	})
}

func TestCreateTableIdempotent(t *testing.T) {
	s, db := testStore(t, Options{})
	ctx := context.Background()
	if _, err := commitLast(ctx, s, []logstore.Record{{Contents: []byte("one")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatalf("second CreateTable: %v", err)
	}
	other := testStoreOn(t, db, s.Table(), Options{})
	if err := other.CreateTable(ctx); err != nil {
		t.Fatalf("CreateTable from another store: %v", err)
	}
	if ids, _ := readAll(t, other, 1, 100); len(ids) != 1 {
		t.Errorf("after CreateTable again: records %v, want the one committed", ids)
	}
	problems, err := s.CheckServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Logf("CheckServer: %s", p)
	}
}

func TestCommitAndRead(t *testing.T) {
	s, _ := testStore(t, Options{MaxStatementRows: 2, PageRows: 3})
	ctx := context.Background()
	if id, err := s.LatestUpdateID(ctx); err != nil || id != 0 {
		t.Fatalf("LatestUpdateID on a new table = %d, %v; want 0", id, err)
	}
	var want [][]byte
	for i := range 4 {
		recs := make([]logstore.Record, i+1)
		for j := range recs {
			recs[j].Contents = []byte(fmt.Sprintf("commit %d record %d", i, j))
			want = append(want, recs[j].Contents)
		}
		last, err := commitLast(ctx, s, recs)
		if err != nil {
			t.Fatal(err)
		}
		if last != uint64(len(want)) {
			t.Fatalf("Commit %d returned %d, want %d", i, last, len(want))
		}
	}
	if id, err := s.LatestUpdateID(ctx); err != nil || id != uint64(len(want)) {
		t.Fatalf("LatestUpdateID = %d, %v; want %d", id, err, len(want))
	}
	ids, got := readAll(t, s, 0, ^uint64(0))
	if len(ids) != len(want) {
		t.Fatalf("read %d records, want %d", len(ids), len(want))
	}
	for i := range want {
		if ids[i] != uint64(i+1) || !bytes.Equal(got[i], want[i]) {
			t.Errorf("record %d: id %d %q, want id %d %q", i, ids[i], got[i], i+1, want[i])
		}
	}
	// Sub-ranges, empty ranges.
	for _, tc := range []struct{ low, high, n uint64 }{{3, 5, 3}, {10, 10, 1}, {11, 20, 0}, {5, 4, 0}, {0, 0, 0}} {
		if ids, _ := readAll(t, s, tc.low, tc.high); uint64(len(ids)) != tc.n {
			t.Errorf("ReadUpdates(%d, %d) gave %v, want %d records", tc.low, tc.high, ids, tc.n)
		}
	}
	// An error from fn comes back as is.
	stop := errors.New("stop")
	if err := s.ReadUpdates(ctx, 1, 10, func(uint64, []byte) error { return stop }); err != stop {
		t.Errorf("ReadUpdates returned %v, want fn's error", err)
	}
}

func TestReadUpdatesPageBytes(t *testing.T) {
	// Pages stop at PageBytes and shrink; every record still comes once.
	s, _ := testStore(t, Options{PageRows: 50, PageBytes: 3000})
	ctx := context.Background()
	var recs []logstore.Record
	for i := range 40 {
		size := 10
		if i%7 == 3 {
			size = 2500
		}
		recs = append(recs, logstore.Record{Contents: bytes.Repeat([]byte{byte(i)}, size)})
	}
	if _, err := commitLast(ctx, s, recs); err != nil {
		t.Fatal(err)
	}
	ids, got := readAll(t, s, 1, 40)
	if len(ids) != 40 {
		t.Fatalf("read %d records, want 40", len(ids))
	}
	for i := range ids {
		if ids[i] != uint64(i+1) || !bytes.Equal(got[i], recs[i].Contents) {
			t.Fatalf("record %d: id %d, %d bytes; want id %d, %d bytes", i, ids[i], len(got[i]), i+1, len(recs[i].Contents))
		}
	}
}

func TestSingleKeyReplace(t *testing.T) {
	s, db := testStore(t, Options{})
	ctx := context.Background()
	long := bytes.Repeat([]byte("k"), 1025)
	commit := func(recs ...logstore.Record) uint64 {
		t.Helper()
		id, err := commitLast(ctx, s, recs)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	commit(logstore.Record{Contents: []byte("a1"), SingleKey: []byte("a")}) // 1, replaced by 3
	commit(logstore.Record{Contents: []byte("b1"), SingleKey: []byte("b")}) // 2
	commit(logstore.Record{Contents: []byte("a2"), SingleKey: []byte("a")}) // 3, replaced by 7
	commit(logstore.Record{Contents: []byte("L1"), SingleKey: long})        // 4, key too long: kept
	commit(logstore.Record{Contents: []byte("L2"), SingleKey: long},        // 5
		logstore.Record{Contents: []byte("n1")},                         // 6, no key
		logstore.Record{Contents: []byte("a3"), SingleKey: []byte("a")}, // 7, replaced by 8 in the same statement
		logstore.Record{Contents: []byte("a4"), SingleKey: []byte("a")}, // 8
		logstore.Record{Contents: []byte("e"), SingleKey: []byte{}})     // 9, empty key: none
	ids, got := readAll(t, s, 1, 100)
	want := map[uint64]string{2: "b1", 4: "L1", 5: "L2", 6: "n1", 8: "a4", 9: "e"}
	if len(ids) != len(want) {
		t.Errorf("records %v, want ids of %v", ids, want)
	}
	for i, id := range ids {
		if want[id] != string(got[i]) {
			t.Errorf("record %d = %q, want %q", id, got[i], want[id])
		}
	}
	var nulls int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+s.Table()+"` WHERE single_key IS NULL").Scan(&nulls); err != nil {
		t.Fatal(err)
	}
	if nulls != 4 {
		t.Errorf("%d rows with a NULL single_key, want 4 (two long keys, no key, empty key)", nulls)
	}
	if last, _ := s.LatestUpdateID(ctx); last != 9 {
		t.Errorf("LatestUpdateID = %d, want 9 (replaced rows keep the counter)", last)
	}
}

func TestRecordSizeLimit(t *testing.T) {
	s, _ := testStore(t, Options{})
	ctx := context.Background()
	lim := s.Limits()
	var packet int
	if err := s.db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
		t.Fatal(err)
	}
	if want := limitsFor(packet); lim != want {
		t.Fatalf("Limits() = %+v, want %+v for max_allowed_packet %d", lim, want, packet)
	}
	if testing.Short() {
		t.Skip("-short: skipping the largest-record round trip")
	}
	big := make([]byte, lim.MaxRecordSize)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	id, err := commitLast(ctx, s, []logstore.Record{{Contents: big, SingleKey: bytes.Repeat([]byte{0}, 1024)}})
	if err != nil {
		t.Fatalf("Commit of MaxRecordSize (%d) bytes: %v", len(big), err)
	}
	_, got := readAll(t, s, id, id)
	if len(got) != 1 || !bytes.Equal(got[0], big) {
		t.Fatalf("largest record did not read back intact")
	}
	_, err = commitLast(ctx, s, []logstore.Record{{Contents: []byte("small")}, {Contents: append(big, 0)}})
	if !errors.Is(err, logstore.ErrTooLarge) {
		t.Fatalf("Commit of MaxRecordSize+1 bytes: %v, want ErrTooLarge", err)
	}
	if last, _ := s.LatestUpdateID(ctx); last != id {
		t.Errorf("LatestUpdateID = %d after a refused commit, want %d", last, id)
	}
}

func TestInfoResetCompact(t *testing.T) {
	s, db := testStore(t, Options{PageRows: 4, MaxStatementRows: 3})
	ctx := context.Background()
	in, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.ID == (logstore.LogID{}) || in.Horizon != 0 {
		t.Fatalf("Info on a new log = %+v", in)
	}
	other := testStoreOn(t, db, s.Table(), Options{})
	if in2, err := other.Info(ctx); err != nil || in2 != in {
		t.Fatalf("Info from another store = %+v, %v; want %+v", in2, err, in)
	}
	var recs []logstore.Record
	for i := range 10 {
		recs = append(recs, logstore.Record{Contents: []byte(fmt.Sprintf("r%d", i+1))})
	}
	if _, err := commitLast(ctx, s, recs); err != nil {
		t.Fatal(err)
	}
	// Drop odd ids, shrink ids divisible by 4, keep the rest; 10 is above
	// the limit.
	var seen []uint64
	stats, err := s.Compact(ctx, 9, 5, func(id uint64, c []byte) ([]byte, bool, error) {
		seen = append(seen, id)
		switch {
		case id%2 == 1:
			return nil, false, nil
		case id%4 == 0:
			return []byte("s"), true, nil
		}
		return c, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[1 2 3 4 5 6 7 8 9]" {
		t.Errorf("Compact visited %v", seen)
	}
	// r1..r9 are two bytes each; r2, s, r6, s are left.
	want := logstore.CompactStats{RecordsBefore: 9, RecordsAfter: 4, BytesBefore: 18, BytesAfter: 6}
	if stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
	ids, got := readAll(t, s, 1, 100)
	if fmt.Sprint(ids) != "[2 4 6 8 10]" || fmt.Sprintf("%s", got) != "[r2 s r6 s r10]" {
		t.Errorf("after Compact: %v %s", ids, got)
	}
	if in2, _ := s.Info(ctx); in2.Horizon != 5 || in2.ID != in.ID {
		t.Errorf("Info after Compact = %+v, want horizon 5 and the same id", in2)
	}
	// A lower horizon does not lower it.
	if _, err := s.Compact(ctx, 0, 3, nil); err != nil {
		t.Fatal(err)
	}
	if in2, _ := s.Info(ctx); in2.Horizon != 5 {
		t.Errorf("horizon after Compact with 3 = %d, want 5", in2.Horizon)
	}

	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	in3, err := other.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in3.ID == in.ID || in3.Horizon != 0 {
		t.Errorf("Info after Reset = %+v, want a new id (old %x) and horizon 0", in3, in.ID)
	}
	if ids, _ := readAll(t, s, 0, ^uint64(0)); len(ids) != 0 {
		t.Errorf("records after Reset: %v", ids)
	}
	if last, _ := s.LatestUpdateID(ctx); last != 10 {
		t.Errorf("LatestUpdateID after Reset = %d, want 10 (ids are never reused)", last)
	}
	if id, err := commitLast(ctx, s, recs[:1]); err != nil || id != 11 {
		t.Errorf("Commit after Reset = %d, %v; want 11", id, err)
	}
}

func TestCompactSkipsRewrittenRows(t *testing.T) {
	// A record replaced by a newer single-key record, or rewritten by
	// another compaction, while the CompactFunc looks at it stays as the
	// other writer left it.
	s, db := testStore(t, Options{})
	ctx := context.Background()
	other := testStoreOn(t, db, s.Table(), Options{})
	if _, err := commitLast(ctx, s, []logstore.Record{
		{Contents: []byte("a1"), SingleKey: []byte("a")},
		{Contents: []byte("b1")},
		{Contents: []byte("c1")},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Compact(ctx, 3, 0, func(id uint64, c []byte) ([]byte, bool, error) {
		switch id {
		case 1: // replaced meanwhile: the update must not resurrect it
			if _, err := commitLast(ctx, other, []logstore.Record{{Contents: []byte("a2"), SingleKey: []byte("a")}}); err != nil {
				return nil, false, err
			}
			return []byte("a1'"), true, nil
		case 2: // rewritten by another compaction: the drop must not apply
			if _, err := other.Compact(ctx, 2, 0, func(id uint64, c []byte) ([]byte, bool, error) {
				if id == 2 {
					return []byte("b1 other"), true, nil
				}
				return c, true, nil
			}); err != nil {
				return nil, false, err
			}
			return nil, false, nil
		}
		return []byte("c1'"), true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ids, got := readAll(t, s, 1, 100)
	if fmt.Sprint(ids) != "[2 3 4]" || fmt.Sprintf("%s", got) != "[b1 other c1' a2]" {
		t.Errorf("after Compact: %v %q", ids, got)
	}
}

func TestClosedAndCancelled(t *testing.T) {
	s, _ := testStore(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := commitLast(ctx, s, []logstore.Record{{Contents: []byte("x")}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with a cancelled context: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	checks := map[string]error{
		"Close":          s.Close(),
		"CreateTable":    s.CreateTable(bg),
		"Reset":          s.Reset(bg),
		"ReadUpdates":    s.ReadUpdates(bg, 1, 2, func(uint64, []byte) error { return nil }),
		"LatestUpdateID": func() error { _, err := s.LatestUpdateID(bg); return err }(),
		"Info":           func() error { _, err := s.Info(bg); return err }(),
		"Commit":         func() error { _, err := commitLast(bg, s, []logstore.Record{{Contents: []byte("x")}}); return err }(),
		"CheckServer":    func() error { _, err := s.CheckServer(bg); return err }(),
		"Check":          s.Check(bg),
		"Compact":        func() error { _, err := s.Compact(bg, 10, 0, nil); return err }(),
		"Poll": func() error {
			_, err := s.Poll(bg, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
			return err
		}(),
	}
	for name, err := range checks {
		if !errors.Is(err, logstore.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
		wantPrefixOnce(t, name+" after Close", err)
	}
	if last, err := testStoreOn(t, s.db, s.Table(), Options{}).LatestUpdateID(bg); err != nil || last != 0 {
		t.Errorf("LatestUpdateID = %d, %v; want 0 (nothing committed)", last, err)
	}
}

func TestCheckServer(t *testing.T) {
	ctx := context.Background()
	db := mysqltest.DB(t)
	table := mysqltest.Table(t, db)
	s := testStoreOn(t, db, table, Options{})
	has := func(problems []string, sub string) bool {
		for _, p := range problems {
			if bytes.Contains([]byte(p), []byte(sub)) {
				return true
			}
		}
		return false
	}
	problems, err := s.CheckServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !has(problems, "table "+table+" does not exist") {
		t.Errorf("before CreateTable: %q, want the missing table reported", problems)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE `"+table+"` (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, single_key VARBINARY(1024) NULL UNIQUE, contents MEDIUMBLOB NOT NULL) ENGINE=MyISAM"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	problems, err = s.CheckServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !has(problems, "engine MyISAM") || has(problems, "does not exist") {
		t.Errorf("with a MyISAM log table: %q, want it reported", problems)
	}
	// A pool with autocommit off.
	off := testStoreOn(t, mysqltest.DB(t, "autocommit", "0"), table, Options{})
	problems, err = off.CheckServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !has(problems, "autocommit is 0") {
		t.Errorf("with autocommit=0: %q, want it reported", problems)
	}
}
