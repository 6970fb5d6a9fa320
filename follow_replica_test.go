package whycache

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/mariadbtest"
)

// replicaPools returns pools on the database test of the shared private
// primary and replica, and a fresh table name whose tables are dropped on
// the primary at cleanup (replication drops them on the replica).
func replicaPools(t *testing.T) (pair *mariadbtest.Pair, pdb, rdb *sql.DB, table string) {
	t.Helper()
	pair = mariadbtest.Shared(t)
	var b [6]byte
	rand.Read(b[:])
	table = "wcf_" + hex.EncodeToString(b[:])
	var err error
	if pdb, err = pair.Primary.Open(mariadbtest.Database); err != nil {
		t.Fatal(err)
	}
	if rdb, err = pair.Replica.Open(mariadbtest.Database); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pair.StartReplication(ctx)
		pdb.ExecContext(ctx, "DROP TABLE IF EXISTS `"+table+"`, `"+table+"_meta`, `"+table+"_marks`")
		pdb.Close()
		rdb.Close()
	})
	return pair, pdb, rdb, table
}

// replicaInstance returns an instance on a new state file and a store on
// table with opts, whose log it creates on the primary (if missing) and
// waits for on the replica; both closed at cleanup.
func replicaInstance(t *testing.T, pair *mariadbtest.Pair, pdb *sql.DB, table string, opts MySQLStoreOptions) *Instance {
	t.Helper()
	ctx := context.Background()
	s, err := NewMySQLStoreOptions(pdb, table, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := Open(s, Options{StatePath: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFollowReplicaLag: a follower reading a replica (MySQLStoreOptions.
// ReadDB) and writing heartbeats to the primary converges with writes to
// the primary; with replication stopped its Stats.ReadLagSeconds and
// LagSeconds grow with the time stopped (reported within two intervals)
// while it keeps the replica's state; after replication restarts it
// converges and the lag falls.
func TestFollowReplicaLag(t *testing.T) {
	pair, pdb, rdb, table := replicaPools(t)
	ctx := context.Background()
	const interval = 100 * time.Millisecond

	writer := replicaInstance(t, pair, pdb, table, MySQLStoreOptions{})
	fc := replicaInstance(t, pair, pdb, table, MySQLStoreOptions{ReadDB: rdb})
	f := startFollower(t, fc, FollowOptions{Interval: interval, Heartbeat: true, Logger: quietLogger()})

	// waitFor returns the first poll event that satisfies ok.
	waitFor := func(what string, ok func(pollEvent) bool) pollEvent {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if ev := f.next(t); ev.err == nil && ok(ev) {
				return ev
			}
		}
		t.Fatalf("follower: %s: not within 30 s", what)
		return pollEvent{}
	}

	var last uint64
	var err error
	for i := range 20 {
		if last, err = writer.Set(ctx, []byte(fmt.Sprintf("k%02d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("converge with the primary", func(ev pollEvent) bool { return ev.st.UpdateID == last })
	if v, err := fc.Get([]byte("k19")); err != nil || string(v) != "v" {
		t.Fatalf("follower Get(k19) = %q, %v", v, err)
	}

	if err := pair.StopReplication(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	late, err := writer.Set(ctx, []byte("late"), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	const stall = time.Second
	time.Sleep(stall)
	ev := waitFor("a poll after the stall", func(ev pollEvent) bool { return ev.at.After(stopped.Add(stall)) })
	// Generous: a loaded machine delays polls; the bound on the lag
	// below is what the two intervals promise.
	if ev.at.Sub(stopped) > stall+3*time.Second {
		t.Errorf("first poll after the stall came %v after the stop", ev.at.Sub(stopped))
	}
	// The heartbeat the replica holds is at most one poll older than the
	// stop: the lag shown is the time stopped less at most two intervals.
	if min := (stall - 2*interval).Seconds(); ev.st.ReadLagSeconds < min || ev.st.LagSeconds < ev.st.ReadLagSeconds {
		t.Errorf("replication stopped for %v: ReadLagSeconds %.2f, LagSeconds %.2f; want at least %.2f", ev.at.Sub(stopped), ev.st.ReadLagSeconds, ev.st.LagSeconds, min)
	}
	if ev.st.UpdateID >= late {
		t.Errorf("follower at %d with replication stopped, but %d was committed after the stop", ev.st.UpdateID, late)
	}
	later := waitFor("a later poll", func(e pollEvent) bool { return e.at.After(ev.at.Add(3 * interval)) })
	if later.st.ReadLagSeconds <= ev.st.ReadLagSeconds {
		t.Errorf("ReadLagSeconds did not grow while replication stayed stopped: %.2f then %.2f", ev.st.ReadLagSeconds, later.st.ReadLagSeconds)
	}

	if err := pair.StartReplication(ctx); err != nil {
		t.Fatal(err)
	}
	done := waitFor("converge after replication restarted", func(ev pollEvent) bool { return ev.st.UpdateID == late && ev.st.ReadLagSeconds < 0.5 })
	if v, err := fc.Get([]byte("late")); err != nil || string(v) != "x" {
		t.Fatalf("follower Get(late) after restart = %q, %v (lag %.2f)", v, err, done.st.ReadLagSeconds)
	}
}

// TestUpdateReplicaBehindOwnWrite: a machine whose own Set went to the
// primary while its replica stalls is not rebuilt by its next Update: the
// replica's older position is checked against the primary, and the state
// keeps its write.
func TestUpdateReplicaBehindOwnWrite(t *testing.T) {
	pair, pdb, rdb, table := replicaPools(t)
	ctx := context.Background()
	c := replicaInstance(t, pair, pdb, table, MySQLStoreOptions{ReadDB: rdb})
	if err := c.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pair.StopReplication(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := c.Set(ctx, []byte("mine"), []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	up, err := c.UpdateStats(ctx)
	if err != nil || up.Rebuilt != nil {
		t.Fatalf("Update with the replica behind this machine's own write: rebuilt %v, %v", up.Rebuilt, err)
	}
	if v, err := c.Get([]byte("mine")); err != nil || string(v) != "1" || c.UpdateID() != id {
		t.Fatalf("after Update: Get(mine) = %q, %v; update id %d, want %d", v, err, c.UpdateID(), id)
	}
}
