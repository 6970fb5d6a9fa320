package mysqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/mariadbtest"
	"github.com/whycache/whycache/logstore"
)

// replicaSetup is a log table on the private primary, seen through the
// primary and through its replica.
type replicaSetup struct {
	pair       *mariadbtest.Pair
	pdb, rdb   *sql.DB // pools on the database test of the primary and the replica
	table      string
	primary    *Store // reads and writes on the primary
	replicated *Store // writes on the primary, reads on the replica
}

// openDB opens a pool on database db of srv, closed at cleanup.
func openDB(t *testing.T, srv *mariadbtest.Server, db string) *sql.DB {
	t.Helper()
	pool, err := srv.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// newReplicaSetup returns stores on a fresh table name of the shared
// pair's database test (not created: see create), dropped at cleanup.
func newReplicaSetup(t *testing.T) *replicaSetup {
	t.Helper()
	pair := mariadbtest.Shared(t)
	var b [6]byte
	rand.Read(b[:])
	r := &replicaSetup{pair: pair, table: "wcr_" + hex.EncodeToString(b[:])}
	r.pdb = openDB(t, pair.Primary, mariadbtest.Database)
	r.rdb = openDB(t, pair.Replica, mariadbtest.Database)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pair.StartReplication(ctx) // a test that failed with replication stopped
		r.pdb.ExecContext(ctx, "DROP TABLE IF EXISTS `"+r.table+"`, `"+r.table+"_meta`, `"+r.table+"_marks`")
	})
	r.primary = testStoreOn(t, r.pdb, r.table, Options{})
	r.replicated = testStoreOn(t, r.pdb, r.table, Options{ReadDB: r.rdb})
	return r
}

// create runs CreateTable on the primary and waits for the replica.
func (r *replicaSetup) create(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := r.primary.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
}

// pollAll polls s from the zero position and returns the result and the
// ids delivered.
func pollAll(t *testing.T, s *Store, primary bool) (logstore.PollResult, []uint64, error) {
	t.Helper()
	return pollAfter(s, logstore.PollRequest{Primary: primary})
}

// pollAfter polls s with req and returns the result and the ids delivered.
func pollAfter(s *Store, req logstore.PollRequest) (logstore.PollResult, []uint64, error) {
	var ids []uint64
	res, err := s.Poll(context.Background(), req, func(e logstore.Entry) error {
		ids = append(ids, e.ID)
		return nil
	})
	return res, ids, err
}

// commitKeys commits one single-key record per key on s.
func commitKeys(t *testing.T, s *Store, keys ...string) uint64 {
	t.Helper()
	var last uint64
	for _, k := range keys {
		rec, err := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte(k), Value: []byte("v")}})
		if err != nil {
			t.Fatal(err)
		}
		if last, err = commitLast(context.Background(), s, []logstore.Record{{Contents: rec, SingleKey: []byte(k)}}); err != nil {
			t.Fatal(err)
		}
	}
	return last
}

// TestReplicaPollFollowsPrimary: a store whose reads go to the replica
// sees what was committed on the primary once the replica has it, sees
// the older snapshot while replication is stopped (and the primary's
// with PollRequest.Primary), and its reads (LatestUpdateID, Info,
// ReadUpdates, Check) use the replica.
func TestReplicaPollFollowsPrimary(t *testing.T) {
	r := newReplicaSetup(t)
	r.create(t)
	ctx := context.Background()
	last := commitKeys(t, r.replicated, "a", "b", "c")
	if err := r.pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	res, ids, err := pollAll(t, r.replicated, false)
	if err != nil || res.Latest.ID != last || len(ids) != 3 {
		t.Fatalf("poll of the caught-up replica: latest %d, %d records, %v; want %d, 3", res.Latest.ID, len(ids), err, last)
	}
	if err := r.pair.StopReplication(ctx); err != nil {
		t.Fatal(err)
	}
	newer := commitKeys(t, r.replicated, "d")
	res, ids, err = pollAll(t, r.replicated, false)
	if err != nil || res.Latest.ID != last || len(ids) != 3 {
		t.Fatalf("poll of the stopped replica: latest %d, %d records, %v; want %d, 3", res.Latest.ID, len(ids), err, last)
	}
	if got, err := r.replicated.LatestUpdateID(ctx); err != nil || got != last {
		t.Fatalf("LatestUpdateID of the stopped replica = %d, %v; want %d", got, err, last)
	}
	if got, _ := readAll(t, r.replicated, 1, newer); len(got) != 3 {
		t.Fatalf("ReadUpdates of the stopped replica gave %v, want 3 records", got)
	}
	res, ids, err = pollAll(t, r.replicated, true)
	if err != nil || res.Latest.ID != newer || len(ids) != 4 {
		t.Fatalf("poll of the primary (Primary: true): latest %d, %d records, %v; want %d, 4", res.Latest.ID, len(ids), err, newer)
	}
	if err := r.replicated.Check(ctx); err != nil {
		t.Fatalf("Check on the replica: %v", err)
	}
	if err := r.pair.StartReplication(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if res, ids, err = pollAll(t, r.replicated, false); err != nil || res.Latest.ID != newer || len(ids) != 4 {
		t.Fatalf("poll of the restarted replica: latest %d, %d records, %v; want %d, 4", res.Latest.ID, len(ids), err, newer)
	}
}

// beatAndPoll writes a heartbeat, waits for the replica to have it and
// polls the replica.
func (r *replicaSetup) beatAndPoll(t *testing.T) logstore.PollResult {
	t.Helper()
	ctx := context.Background()
	if err := r.replicated.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	res, _, err := pollAll(t, r.replicated, false)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestReplicaHeartbeatLag: Heartbeat writes the primary's clock; a poll of
// the replica returns it with the replica's clock, so ReadTime -
// Heartbeat grows while replication is stopped (the heartbeat going on on
// the primary) and falls back once it runs again.
func TestReplicaHeartbeatLag(t *testing.T) {
	r := newReplicaSetup(t)
	r.create(t)
	ctx := context.Background()
	res, _, err := pollAll(t, r.replicated, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Heartbeat.IsZero() || res.ReadTime.IsZero() {
		t.Fatalf("before any heartbeat: Heartbeat %v (want zero), ReadTime %v (want set)", res.Heartbeat, res.ReadTime)
	}
	if d := time.Since(res.ReadTime); d < -5*time.Second || d > 5*time.Second {
		t.Fatalf("ReadTime %v is %v away from this machine's clock (time zones mixed up?)", res.ReadTime, d)
	}
	res = r.beatAndPoll(t)
	caughtUp := res.ReadTime.Sub(res.Heartbeat)
	if res.Heartbeat.IsZero() || caughtUp < 0 || caughtUp > 2*time.Second {
		t.Fatalf("caught up: Heartbeat %v, ReadTime %v: lag %v", res.Heartbeat, res.ReadTime, caughtUp)
	}
	if err := r.pair.StopReplication(ctx); err != nil {
		t.Fatal(err)
	}
	const stopped = 600 * time.Millisecond
	for end := time.Now().Add(stopped); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := r.replicated.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	res, _, err = pollAll(t, r.replicated, false)
	if err != nil {
		t.Fatal(err)
	}
	if lag := res.ReadTime.Sub(res.Heartbeat); lag < stopped {
		t.Fatalf("replication stopped for %v with heartbeats every 50 ms: lag %v, want at least %v", stopped, lag, stopped)
	}
	primary, _, err := pollAll(t, r.replicated, true)
	if err != nil {
		t.Fatal(err)
	}
	if lag := primary.ReadTime.Sub(primary.Heartbeat); lag > 500*time.Millisecond {
		t.Fatalf("the primary's own heartbeat is %v old", lag)
	}
	if err := r.pair.StartReplication(ctx); err != nil {
		t.Fatal(err)
	}
	res = r.beatAndPoll(t)
	if lag := res.ReadTime.Sub(res.Heartbeat); lag > stopped {
		t.Fatalf("after replication restarted: lag %v, want below %v", lag, stopped)
	}
}

// TestReplicaWithoutLogIsNoLog: a read pool on a replica where
// init-schema never ran fails every read with ErrNoLog saying to run
// init-schema on the primary, and creates nothing on either server.
func TestReplicaWithoutLogIsNoLog(t *testing.T) {
	r := newReplicaSetup(t)
	ctx := context.Background()
	_, _, err := pollAll(t, r.replicated, false)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), "init-schema") || !strings.Contains(err.Error(), "on the primary") {
			t.Errorf("%s on a replica without the log: %v; want ErrNoLog saying to run init-schema on the primary", what, err)
		}
	}
	check("Poll", err)
	_, err = r.replicated.LatestUpdateID(ctx)
	check("LatestUpdateID", err)
	_, err = r.replicated.Info(ctx)
	check("Info", err)
	check("ReadUpdates", r.replicated.ReadUpdates(ctx, 1, 10, func(uint64, []byte) error { return nil }))
	check("Check", r.replicated.Check(ctx))
	if err := r.pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, db := range []*sql.DB{r.pdb, r.rdb} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?", r.table+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("reads created %d tables named %s*", n, r.table)
		}
	}
}

// TestReplicaOtherLog: a read pool whose table holds another log than the
// primary's (here: the same table name in another database) fails the
// first poll with ErrReplicaMismatch (and logstore.ErrLogMismatch),
// delivering nothing.
func TestReplicaOtherLog(t *testing.T) {
	r := newReplicaSetup(t)
	r.create(t)
	ctx := context.Background()
	commitKeys(t, r.primary, "a")
	other := "test_" + r.table
	if _, err := r.pair.PrimaryDB().Exec("CREATE DATABASE " + other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.pair.PrimaryDB().Exec("DROP DATABASE IF EXISTS " + other) })
	if err := testStoreOn(t, openDB(t, r.pair.Primary, other), r.table, Options{}).CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	wrong := testStoreOn(t, r.pdb, r.table, Options{ReadDB: openDB(t, r.pair.Replica, other)})
	_, ids, err := pollAll(t, wrong, false)
	if !errors.Is(err, ErrReplicaMismatch) || !errors.Is(err, logstore.ErrLogMismatch) || len(ids) != 0 {
		t.Fatalf("poll of a read pool on another log: %d records, %v; want none and ErrReplicaMismatch", len(ids), err)
	}
}

// TestReplicaBehindRecreatedLog: after the primary's log got a new
// identity (Reset) that the replica has not received, a poll of the
// replica fails with ErrReplicaMismatch once the primary's identity is
// read again (at the latest after primaryIdentityTTL; here at every poll), and succeeds with
// the new identity once the replica caught up.
func TestReplicaBehindRecreatedLog(t *testing.T) {
	r := newReplicaSetup(t)
	r.create(t)
	ctx := context.Background()
	commitKeys(t, r.primary, "a", "b")
	if err := r.pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	r.replicated.identityTTL = time.Nanosecond // ask the primary at every poll
	res, _, err := pollAll(t, r.replicated, false)
	if err != nil {
		t.Fatal(err)
	}
	old := res.Info.ID
	if err := r.pair.StopReplication(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.primary.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ids, err := pollAll(t, r.replicated, false); !errors.Is(err, ErrReplicaMismatch) || len(ids) != 0 {
		t.Fatalf("poll of a replica behind a recreated log: %d records, %v; want none and ErrReplicaMismatch", len(ids), err)
	}
	if err := r.pair.StartReplication(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	res, _, err = pollAll(t, r.replicated, false)
	if err != nil || res.Info.ID == old {
		t.Fatalf("poll of the caught-up replica: identity %x (old %x), %v", res.Info.ID, old, err)
	}
}

// TestHeartbeatColumnUpgrade: a meta table of the version before
// heartbeats fails polls and Heartbeat with ErrNoLog saying to run
// init-schema to upgrade (as for every earlier column), and CreateTable
// adds the column in place, keeping the log.
func TestHeartbeatColumnUpgrade(t *testing.T) {
	s, db := testStore(t, Options{})
	ctx := context.Background()
	last := commitKeys(t, s, "a")
	if _, err := db.Exec("ALTER TABLE `" + s.Table() + "_meta` DROP COLUMN heartbeat_us"); err != nil {
		t.Fatal(err)
	}
	_, _, err := pollAll(t, s, false)
	if !errors.Is(err, logstore.ErrNoLog) || !strings.Contains(err.Error(), "older layout") {
		t.Errorf("poll of a meta table without heartbeat_us: %v; want ErrNoLog saying the layout is older", err)
	}
	if err := s.Heartbeat(ctx); !errors.Is(err, logstore.ErrNoLog) {
		t.Errorf("Heartbeat on a meta table without heartbeat_us: %v; want ErrNoLog", err)
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	res, ids, err := pollAll(t, s, false)
	if err != nil || res.Heartbeat.IsZero() || res.Latest.ID != last || len(ids) != 1 {
		t.Fatalf("after the upgrade: heartbeat %v, latest %d, %d records, %v; want a heartbeat and the log as it was (%d)", res.Heartbeat, res.Latest.ID, len(ids), err, last)
	}
}

// queryCacheHits returns the server's Qcache_hits.
func queryCacheHits(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var name string
	var n int64
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Qcache_hits'").Scan(&name, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPollAnsweredFromQueryCache(t *testing.T) {
	// Followers at the same position ask the same question: a server with
	// the query cache on (the test pair's are) answers all but the first
	// from the cache, and a commit replicated to it invalidates the
	// answer, so the next poll sees the new records.
	r := newReplicaSetup(t)
	r.create(t)
	ctx := context.Background()
	replicated := func(keys ...string) logstore.Position {
		t.Helper()
		last := commitKeys(t, r.primary, keys...)
		if err := r.pair.WaitCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		return logstore.Position{ID: last}
	}
	pos := replicated("a")
	followers := []*Store{r.replicated, testStoreOn(t, r.pdb, r.table, Options{ReadDB: openDB(t, r.pair.Replica, mariadbtest.Database)})}
	poll := func(s *Store) []uint64 {
		t.Helper()
		_, ids, err := pollAfter(s, logstore.PollRequest{After: pos})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for _, f := range followers {
		poll(f) // prepares the statement on each pool
	}
	before := queryCacheHits(t, r.rdb)
	for _, f := range followers {
		if ids := poll(f); len(ids) != 0 {
			t.Fatalf("at the latest position: delivered %v", ids)
		}
	}
	if hits := queryCacheHits(t, r.rdb) - before; hits < 2 {
		t.Errorf("two polls at the same position on the replica: %d query cache hits, want 2", hits)
	}
	second := replicated("b")
	for i, f := range followers {
		if ids := poll(f); len(ids) != 1 || ids[0] != second.ID {
			t.Errorf("follower %d after a replicated commit: delivered %v, want [%d]", i, ids, second.ID)
		}
	}
}
