package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

// The log exists only once CreateTable made it: every other method reports
// a missing log (ErrNoLog, saying what to do) and never creates one.

// initHint is what every missing-log error tells the operator to do.
const initHint = "run whycache init-schema (CreateTable) on the primary"

// recordOf returns a Go-format record setting key to value.
func recordOf(t testing.TB, key, value string) []byte {
	t.Helper()
	b, err := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte(key), Value: []byte(value)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listTables returns the tables whose name starts with table.
func listTables(t testing.TB, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?", table+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// countRows returns the result of a COUNT(*) query.
func countRows(t testing.TB, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// readOnlyDB returns a pool whose sessions cannot write, as on a
// read-only replica.
func readOnlyDB(t *testing.T) *sql.DB {
	t.Helper()
	db := mysqltest.DB(t, "tx_read_only", "1") // MariaDB, MySQL 5.7
	var ro int
	if err := db.QueryRow("SELECT @@session.tx_read_only").Scan(&ro); err != nil || ro != 1 {
		db = mysqltest.DB(t, "transaction_read_only", "1") // MySQL 8
	}
	return db
}

// callAll calls every method of s that needs the log and returns
// their errors by name.
func callAll(s *Store) map[string]error {
	ctx := context.Background()
	var some logstore.LogID
	some[0] = 1
	recs := []logstore.Record{{Contents: []byte("x")}}
	return map[string]error{
		"Info":           func() error { _, err := s.Info(ctx); return err }(),
		"LatestUpdateID": func() error { _, err := s.LatestUpdateID(ctx); return err }(),
		"Poll": func() error {
			_, err := s.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
			return err
		}(),
		"Poll with a position": func() error {
			_, err := s.Poll(ctx, logstore.PollRequest{After: logstore.Position{ID: 1, Nonce: 5}}, func(logstore.Entry) error { return nil })
			return err
		}(),
		"Check":                  s.Check(ctx),
		"Commit":                 func() error { _, err := s.Commit(ctx, logstore.LogID{}, recs); return err }(),
		"Commit expecting a log": func() error { _, err := s.Commit(ctx, some, recs); return err }(),
		"Commit without records": func() error { _, err := s.Commit(ctx, logstore.LogID{}, nil); return err }(),
		"Compact raising horizon": func() error {
			_, err := s.Compact(ctx, 10, 5, func(uint64, []byte) ([]byte, bool, error) { return nil, false, errors.New("CompactFunc called") })
			return err
		}(),
		"Reset": s.Reset(ctx),
	}
}

// expectNoLog fails the test unless every error wraps ErrNoLog and
// says want.
func expectNoLog(t *testing.T, errs map[string]error, want string) {
	t.Helper()
	for name, err := range errs {
		if !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want ErrNoLog saying %q", name, err, want)
		}
		wantPrefixOnce(t, name, err)
	}
}

// wantPrefixOnce fails the test unless err's message starts with this
// package's prefix and names no package twice.
func wantPrefixOnce(t *testing.T, what string, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "mysqlstore: ") {
		t.Errorf("%s: error %q does not start with \"mysqlstore: \"", what, msg)
	}
	for _, p := range []string{"whycache:", "mysqlstore:", "logstore:"} {
		if strings.Count(msg, p) > 1 {
			t.Errorf("%s: error %q repeats %q", what, msg, p)
		}
	}
}

func TestMissingMetaRow(t *testing.T) {
	// An operator lost the meta row (a bad restore, a stray DELETE). No
	// method recreates it (a second identity next to the first), on the
	// primary or through a read-only pool: they all say to run
	// init-schema. CreateTable then makes a new identity and keeps ids
	// above every id ever committed, even one whose record is gone.
	s, db := testStore(t, Options{})
	ctx := context.Background()
	before, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var last logstore.Committed
	for i := range 3 {
		last, err = s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: recordOf(t, fmt.Sprint("k", i), "v")}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The latest record is compacted away: only its mark keeps its id.
	if _, err := s.Compact(ctx, last.Last, 0, func(id uint64, c []byte) ([]byte, bool, error) { return c, id != last.Last, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM `" + s.Table() + "_meta`"); err != nil {
		t.Fatal(err)
	}
	meta := "SELECT COUNT(*) FROM `" + s.Table() + "_meta`"
	expectNoLog(t, callAll(s), "the meta row of "+s.Table()+"_meta does not exist; "+initHint)
	replica := testStoreOn(t, readOnlyDB(t), s.Table(), Options{})
	reads := callAll(replica)
	for name := range reads {
		if strings.HasPrefix(name, "Commit") { // the replica refuses them first
			delete(reads, name)
		}
	}
	expectNoLog(t, reads, initHint)
	if n := countRows(t, db, meta); n != 0 {
		t.Fatalf("%d meta rows after the calls, want none: a method created the log", n)
	}
	if err := replica.CreateTable(ctx); err == nil {
		t.Fatal("CreateTable through a read-only pool succeeded")
	}

	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID == before.ID {
		t.Errorf("CreateTable after the meta row was lost kept identity %x; want a new one", before.ID)
	}
	c, err := s.Commit(ctx, after.ID, []logstore.Record{{Contents: recordOf(t, "k", "new")}})
	if err != nil || c.First != last.Last+1 {
		t.Errorf("Commit after CreateTable = %+v, %v; want id %d (above every id ever committed)", c, err, last.Last+1)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestMissingTables(t *testing.T) {
	// A store on tables nobody created: every method says which tables are
	// missing, and nothing creates them but CreateTable.
	db := mysqltest.DB(t)
	table := mysqltest.Table(t, db)
	s := testStoreOn(t, db, table, Options{})
	expectNoLog(t, callAll(s), "does not exist; "+initHint)
	if err := s.ReadUpdates(context.Background(), 1, 10, func(uint64, []byte) error { return nil }); !errors.Is(err, logstore.ErrNoLog) {
		t.Errorf("ReadUpdates: %v, want ErrNoLog", err)
	}
	if got := listTables(t, db, table); len(got) != 0 {
		t.Errorf("tables %v exist; nothing but CreateTable may create them", got)
	}
	// Only the marks table missing: what an earlier version's tables lack.
	if err := s.CreateTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DROP TABLE `" + table + "_marks`"); err != nil {
		t.Fatal(err)
	}
	s2 := testStoreOn(t, db, table, Options{})
	for name, err := range map[string]error{
		"Poll": func() error {
			_, err := s2.Poll(context.Background(), logstore.PollRequest{}, func(logstore.Entry) error { return nil })
			return err
		}(),
		"Commit": func() error {
			_, err := commitLast(context.Background(), s2, []logstore.Record{{Contents: []byte("x")}})
			return err
		}(),
	} {
		if !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), "table "+table+"_marks does not exist") {
			t.Errorf("%s without the marks table: %v; want ErrNoLog naming it", name, err)
		}
	}
}

func TestReadOnlyPool(t *testing.T) {
	// Every read method works through a pool that cannot write (a
	// replica); writes are refused by the server.
	s, _ := testStore(t, Options{})
	ctx := context.Background()
	c, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: recordOf(t, "a", "1")}, {Contents: recordOf(t, "b", "2")}})
	if err != nil {
		t.Fatal(err)
	}
	ro := testStoreOn(t, readOnlyDB(t), s.Table(), Options{})
	if _, err := ro.Info(ctx); err != nil {
		t.Errorf("Info: %v", err)
	}
	if id, err := ro.LatestUpdateID(ctx); err != nil || id != c.Last {
		t.Errorf("LatestUpdateID = %d, %v; want %d", id, err, c.Last)
	}
	if ids, _ := readAll(t, ro, 1, 10); len(ids) != 2 {
		t.Errorf("ReadUpdates read %v", ids)
	}
	n := 0
	res, err := ro.Poll(ctx, logstore.PollRequest{After: logstore.Position{ID: c.First, Nonce: c.Nonce}}, func(logstore.Entry) error { n++; return nil })
	if err != nil || n != 1 || res.Verdict != logstore.VerdictMatch || res.Latest != c.Position() {
		t.Errorf("Poll = %+v, %v, %d entries; want a match, 1 entry, latest %+v", res, err, n, c.Position())
	}
	if err := ro.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
	if _, err := ro.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: []byte("x")}}); err == nil {
		t.Errorf("Commit through a read-only pool succeeded")
	}
}

func TestCreateTableAdopts(t *testing.T) {
	// A log table with records of this store's format and no meta table
	// (its meta table was dropped): CreateTable keeps the records and
	// starts the counter above them.
	ctx := context.Background()
	db := mysqltest.DB(t)
	table := mysqltest.Table(t, db)
	schema, err := testSchema.For(table)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schemaStatements(schema)[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO `"+table+"` (id, single_key, contents) VALUES (3, NULL, ?), (7, 'k', ?)",
		recordOf(t, "three", "3"), recordOf(t, "k", "7")); err != nil {
		t.Fatal(err)
	}
	s := testStoreOn(t, db, table, Options{})
	if _, err := s.LatestUpdateID(ctx); !errors.Is(err, logstore.ErrNoLog) {
		t.Fatalf("LatestUpdateID before CreateTable: %v, want ErrNoLog", err)
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if last, err := s.LatestUpdateID(ctx); err != nil || last != 7 {
		t.Fatalf("LatestUpdateID after CreateTable = %d, %v; want 7", last, err)
	}
	if id, err := commitLast(ctx, s, []logstore.Record{{Contents: recordOf(t, "k", "8"), SingleKey: []byte("k")}}); err != nil || id != 8 {
		t.Fatalf("Commit = %d, %v; want 8", id, err)
	}
	if ids, _ := readAll(t, s, 1, 100); fmt.Sprint(ids) != "[3 8]" {
		t.Errorf("log holds %v, want [3 8]", ids)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// pythonDDL is a log table in Python whycache's layout.
const pythonDDL = "CREATE TABLE `%s` (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, single_key VARBINARY(1024) NULL, " +
	"contents MEDIUMBLOB NOT NULL, PRIMARY KEY (id), UNIQUE KEY (single_key)) ENGINE=InnoDB"

func TestForeignTableRefused(t *testing.T) {
	// Tables this store must not guess at: CreateTable refuses them
	// without adding tables next to them, and the read methods say what
	// the table is.
	python := func(t *testing.T, key, value string) []byte {
		b, err := logstore.AppendPythonRecord(nil, []logstore.Item{{Key: []byte(key), Value: []byte(value)}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		ddl  string                      // %s is the table
		rows func(t *testing.T) [][]byte // contents inserted with ids 1, 2, ...
		want string
	}{
		{"python layout with records", pythonDDL, func(t *testing.T) [][]byte {
			return [][]byte{python(t, "a", "1"), python(t, "b", "2")}
		}, "Python whycache's layout (an AUTO_INCREMENT id)"},
		{"python layout, empty", pythonDDL, nil, "Python whycache's layout (an AUTO_INCREMENT id)"},
		{"python records, no AUTO_INCREMENT", "CREATE TABLE `%s` (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, single_key VARBINARY(1024) NULL UNIQUE, contents MEDIUMBLOB NOT NULL)",
			func(t *testing.T) [][]byte { return [][]byte{python(t, "a", "1")} }, "records in the Python framing"},
		{"not a log", "CREATE TABLE `%s` (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, name VARCHAR(10))", nil, "is not a whycache log (it has no column single_key)"},
		{"rows that are no records", "CREATE TABLE `%s` (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, single_key VARBINARY(1024) NULL UNIQUE, contents MEDIUMBLOB NOT NULL)",
			func(t *testing.T) [][]byte { return [][]byte{[]byte("hello")} }, "its first row is not a whycache record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := mysqltest.DB(t)
			table := mysqltest.Table(t, db)
			if _, err := db.Exec(fmt.Sprintf(tc.ddl, table)); err != nil {
				t.Fatal(err)
			}
			if tc.rows != nil {
				for i, c := range tc.rows(t) {
					if _, err := db.Exec("INSERT INTO `"+table+"` (id, contents) VALUES (?, ?)", i+1, c); err != nil {
						t.Fatal(err)
					}
				}
			}
			s := testStoreOn(t, db, table, Options{})
			err := s.CreateTable(ctx)
			if !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CreateTable: %v; want ErrNoLog saying %q", err, tc.want)
			}
			if strings.Contains(tc.want, "Python") && !strings.Contains(err.Error(), "--format python") {
				t.Errorf("CreateTable: %v; want it to name the Python mode", err)
			}
			if got := listTables(t, db, table); len(got) != 1 || got[0] != table {
				t.Errorf("tables after the refusal: %v, want only %s", got, table)
			}
			expectNoLog(t, callAll(s), tc.want)
		})
	}
}

// v1Tables creates the tables of the previous version of the schema
// (testdata/schema_v1.sql: no nonces, no marks) with a meta row and
// records as that version wrote them, and returns the identity.
func v1Tables(t *testing.T, db *sql.DB, table string, records [][]byte) logstore.LogID {
	t.Helper()
	v1, err := os.ReadFile("testdata/schema_v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	schema := strings.NewReplacer("`whycache`", "`"+table+"`", "`whycache_meta`", "`"+table+"_meta`").Replace(string(v1))
	for _, stmt := range schemaStatements(schema) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	id, err := newLogID()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO `"+table+"_meta` (one, log_id, next_id, horizon) VALUES (1, ?, ?, 0)", id[:], len(records)+1); err != nil {
		t.Fatal(err)
	}
	for i, c := range records {
		if _, err := db.Exec("INSERT INTO `"+table+"` (id, contents) VALUES (?, ?)", i+1, c); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func TestUpgradeInPlace(t *testing.T) {
	// Tables of the previous version, upgraded by many CreateTable calls
	// at once: same identity and records, old records checked by id, new
	// commits with nonces.
	ctx := context.Background()
	db := mysqltest.DB(t)
	table := mysqltest.Table(t, db)
	old := [][]byte{recordOf(t, "a", "1"), recordOf(t, "b", "2"), recordOf(t, "c", "3")}
	id := v1Tables(t, db, table, old)

	s := testStoreOn(t, db, table, Options{})
	// Before the upgrade the store says so.
	for name, err := range map[string]error{
		"Poll": func() error {
			_, err := s.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
			return err
		}(),
		"Commit": func() error { _, err := commitLast(ctx, s, []logstore.Record{{Contents: []byte("x")}}); return err }(),
	} {
		if !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), initHint) {
			t.Errorf("%s on the previous version's tables: %v; want ErrNoLog saying %q", name, err, initHint)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		other := testStoreOn(t, mysqltest.DB(t), table, Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- other.CreateTable(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent CreateTable: %v", err)
		}
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatalf("CreateTable again: %v", err)
	}
	want := mysqltest.Tables(table)
	sort.Strings(want)
	if got := listTables(t, db, table); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tables %v, want %v", got, want)
	}
	in, err := s.Info(ctx)
	if err != nil || in.ID != id {
		t.Fatalf("Info after the upgrade = %+v, %v; want identity %x", in, err, id)
	}
	var entries []logstore.Entry
	res, err := s.Poll(ctx, logstore.PollRequest{}, func(e logstore.Entry) error { entries = append(entries, e); return nil })
	if err != nil || len(entries) != 3 || res.Latest != (logstore.Position{ID: 3}) {
		t.Fatalf("Poll after the upgrade = %+v, %v, %d entries; want 3 and latest 3 without a nonce", res, err, len(entries))
	}
	for _, e := range entries {
		if e.Nonce != 0 {
			t.Errorf("old record %d has nonce %x, want 0", e.ID, e.Nonce)
		}
	}
	res, err = s.Poll(ctx, logstore.PollRequest{After: logstore.Position{ID: 2}}, func(logstore.Entry) error { return nil })
	if err != nil || res.Verdict != logstore.VerdictMatch {
		t.Errorf("Poll at an old position = %+v, %v; want a match by id", res, err)
	}
	c, err := s.Commit(ctx, id, []logstore.Record{{Contents: recordOf(t, "d", "4")}})
	if err != nil || c.First != 4 || c.Nonce == 0 {
		t.Fatalf("Commit after the upgrade = %+v, %v; want id 4 with a nonce", c, err)
	}
	res, err = s.Poll(ctx, logstore.PollRequest{After: logstore.Position{ID: 2}}, func(logstore.Entry) error { return nil })
	if err != nil || res.Verdict != logstore.VerdictMatch || res.Latest != c.Position() || res.LatestTime.IsZero() {
		t.Errorf("Poll after a new commit = %+v, %v; want a match, latest %+v and its time", res, err, c.Position())
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}

	// A writer of the previous version, still running during the rolling
	// upgrade, commits id 5: no nonce, no mark, the meta row's latest
	// nonce left at commit 4's. The latest position has no nonce then,
	// positions are checked by id, and Check accepts it.
	v1Commit(t, db, table, recordOf(t, "e", "5"))
	res, err = s.Poll(ctx, logstore.PollRequest{After: c.Position()}, func(logstore.Entry) error { return nil })
	if err != nil || res.Verdict != logstore.VerdictMatch || res.Latest != (logstore.Position{ID: 5}) {
		t.Errorf("Poll after the previous version's commit = %+v, %v; want a match and latest 5 without a nonce", res, err)
	}
	c2, err := s.Commit(ctx, id, []logstore.Record{{Contents: recordOf(t, "f", "6")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, pos := range []logstore.Position{{ID: 5}, {ID: 5, Nonce: c.Nonce}, c.Position(), c2.Position()} {
		if v := verdictAt(t, s, pos); v != logstore.VerdictMatch {
			t.Errorf("Poll at %+v in a log the previous version wrote to: %v, want match", pos, v)
		}
	}
	if v := verdictAt(t, s, logstore.Position{ID: 4, Nonce: c.Nonce ^ 1}); v != logstore.VerdictMismatch {
		t.Errorf("Poll at commit 4 with another nonce: %v, want mismatch", v)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check after the previous version's commit: %v", err)
	}
}

// v1Commit commits one record the way the previous version did: the
// counter taken with LAST_INSERT_ID, the row written without a nonce, no
// mark.
func v1Commit(t *testing.T, db *sql.DB, table string, contents []byte) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	res, err := tx.Exec("UPDATE `"+table+"_meta` SET next_id = LAST_INSERT_ID(next_id + ?) WHERE one = 1", 1)
	if err != nil {
		t.Fatal(err)
	}
	next, err := res.LastInsertId()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("REPLACE INTO `"+table+"` (id, single_key, contents) VALUES (?,?,?)", next-1, nil, contents); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
