package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/mariadbtest"
)

// followUser is the user the follower of the replica tests connects as,
// so its connections can be counted in the servers' process lists.
const followUser = "wcfollow"

// replicaCLI returns, on the shared private primary and replica, a fresh
// log (init-schema run as root on the primary, replicated), a writer cli
// (root on the primary) and a follower cli (followUser, --read-store on
// the replica).
func replicaCLI(t *testing.T) (pair *mariadbtest.Pair, writer, follower *cli) {
	t.Helper()
	pair = mariadbtest.Shared(t)
	ctx := context.Background()
	if err := pair.CreateUser(ctx, followUser); err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	table := "wcc_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pair.StartReplication(ctx)
		pair.PrimaryDB().ExecContext(ctx, "DROP TABLE IF EXISTS "+mariadbtest.Database+".`"+table+"`, "+
			mariadbtest.Database+".`"+table+"_meta`, "+mariadbtest.Database+".`"+table+"_marks`")
	})
	writer = &cli{t: t, store: "mysql:" + pair.Primary.DSN("root", mariadbtest.Database), table: table}
	follower = &cli{t: t, store: "mysql:" + pair.Primary.DSN(followUser, mariadbtest.Database), table: table,
		read: "mysql:" + pair.Replica.DSN(followUser, mariadbtest.Database)}
	writer.ok("init-schema")
	if err := pair.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	return pair, writer, follower
}

// connections returns how many connections followUser has open on db's
// server.
func connections(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", followUser).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// processList returns the process list of db's server, for messages.
func processList(t *testing.T, db *sql.DB) string {
	rows, err := db.Query("SELECT USER, HOST, COALESCE(DB, ''), COMMAND, COALESCE(INFO, '') FROM information_schema.PROCESSLIST")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var user, host, db, cmd, info string
		if err := rows.Scan(&user, &host, &db, &cmd, &info); err != nil {
			return err.Error()
		}
		b.WriteString(strings.Join([]string{user, host, db, cmd, info}, " | ") + "\n")
	}
	return b.String()
}

// TestFollowReadStoreReplica: "whycache follow --heartbeat" with
// --read-store on a replica and --interval 100ms converges with writes to
// the primary holding exactly one connection on each server; with
// replication stopped whycache_read_lag_seconds, whycache_lag_seconds and
// "stats --read-store" show the lag growing; after the restart it
// converges.
func TestFollowReadStoreReplica(t *testing.T) {
	pair, writer, follower := replicaCLI(t)
	dir := t.TempDir()
	wstate, fstate := filepath.Join(dir, "w.state"), filepath.Join(dir, "f.state")
	for _, k := range []string{"a", "b", "c"} {
		writer.ok("--state", wstate, "set", k, "v-"+k)
	}
	// latest is the primary's latest id.
	latest := func() float64 {
		var st struct {
			LatestID uint64 `json:"latest_id"`
		}
		if err := json.Unmarshal([]byte(writer.ok("--state", wstate, "--json", "stats")), &st); err != nil {
			t.Fatal(err)
		}
		if st.LatestID == 0 {
			t.Fatal("the primary's latest id is 0 after three sets")
		}
		return float64(st.LatestID)
	}
	want := latest()
	f := startFollow(t, follower, fstate, 100*time.Millisecond, "--heartbeat")
	url := f.waitLog(t, "serving metrics").URL
	waitMetric(t, url, "converge", func(m map[string]float64) bool { return m["whycache_update_id"] == want })

	// One connection on each server, held between polls 100 ms apart.
	for range 20 {
		if r, p := connections(t, pair.ReplicaDB()), connections(t, pair.PrimaryDB()); r != 1 || p != 1 {
			t.Fatalf("follow --interval 100ms holds %d connections on the replica and %d on the primary, want 1 and 1; replica's process list:\n%s", r, p, processList(t, pair.ReplicaDB()))
		}
		time.Sleep(50 * time.Millisecond)
	}

	ctx := context.Background()
	if err := pair.StopReplication(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	writer.ok("--state", wstate, "set", "late", "x")
	m := waitMetric(t, url, "lag shown", func(m map[string]float64) bool { return m["whycache_read_lag_seconds"] >= 1 })
	// Shown late only on a loaded machine (polls delayed); that the lag
	// is not understated is checked by stats below.
	if took := time.Since(stopped); took > 4*time.Second {
		t.Errorf("a lag of 1 s was shown %v after replication stopped", took)
	}
	if m["whycache_lag_seconds"] < m["whycache_read_lag_seconds"] || m["whycache_update_id"] != want || latest() <= want {
		t.Errorf("replication stopped: lag %v s, update id %v (want at least the read lag %v, and %v)", m["whycache_lag_seconds"], m["whycache_update_id"], m["whycache_read_lag_seconds"], want)
	}
	// The replica's last heartbeat is from before the stop, and stats
	// reads the replica's clock after this.
	before := time.Since(stopped)
	var st struct {
		ReadLag float64 `json:"read_lag_seconds"`
		Lag     float64 `json:"lag_seconds"`
	}
	if err := json.Unmarshal([]byte(follower.ok("--state", fstate, "--json", "stats")), &st); err != nil {
		t.Fatal(err)
	}
	if min := before.Seconds() - 0.05; st.ReadLag < min || st.Lag < st.ReadLag {
		t.Errorf("stats --read-store with replication stopped for over %v: read lag %.2f s, lag %.2f s", before, st.ReadLag, st.Lag)
	}
	text := follower.ok("--state", fstate, "stats")
	if !strings.Contains(text, "replica lag") {
		t.Errorf("stats --read-store shows no replica lag:\n%s", text)
	}

	if err := pair.StartReplication(ctx); err != nil {
		t.Fatal(err)
	}
	want = latest()
	waitMetric(t, url, "converge after restart", func(m map[string]float64) bool {
		return m["whycache_update_id"] == want && m["whycache_read_lag_seconds"] < 0.5
	})
	if got := follower.ok("--state", fstate, "get", "late"); got != "x" {
		t.Errorf("get late after restart = %q", got)
	}
}

// TestFollowReleasesIdleConnection: a follower polling every 8 s closes
// its connection to the replica between polls, and keeps none to the
// primary.
func TestFollowReleasesIdleConnection(t *testing.T) {
	pair, writer, follower := replicaCLI(t)
	dir := t.TempDir()
	writer.ok("--state", filepath.Join(dir, "w.state"), "set", "a", "1")
	f := startFollow(t, follower, filepath.Join(dir, "f.state"), 8*time.Second)
	url := f.waitLog(t, "serving metrics").URL
	waitMetric(t, url, "first poll", func(m map[string]float64) bool { return m["whycache_update_id"] > 0 })
	polled := time.Now()
	if n := connections(t, pair.ReplicaDB()); n != 1 {
		t.Fatalf("right after its poll the follower holds %d connections on the replica, want 1", n)
	}
	// The primary (asked for the log's identity at the first poll) keeps
	// no connection of a follower without --heartbeat.
	for connections(t, pair.PrimaryDB()) != 0 {
		if time.Since(polled) > time.Second {
			t.Fatalf("the follower still holds a connection on the primary %v after its poll", time.Since(polled))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for connections(t, pair.ReplicaDB())+connections(t, pair.PrimaryDB()) != 0 {
		if time.Since(polled) > 7*time.Second {
			t.Fatalf("the follower still holds a connection %v after its poll (interval 8s)", time.Since(polled))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReadStoreUsage: --read-store is checked before anything runs and
// never shows a password.
func TestReadStoreUsage(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "s.state")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"file store", []string{"--store", "file:" + dir, "--read-store", "mysql:u@tcp(127.0.0.1:1)/db"}, "needs a mysql --store"},
		{"file read store", []string{"--store", "mysql:u@tcp(127.0.0.1:1)/db", "--read-store", "file:" + dir}, "want mysql:DSN"},
		{"bad DSN", []string{"--store", "mysql:u@tcp(127.0.0.1:1)/db", "--read-store", "mysql:u:s3cret@tcp(127.0.0.1:1"}, "--read-store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runIn(t, nil, append(tc.args, "--state", state, "stats")...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, exitUsage, tc.want)
			}
			if strings.Contains(r.stderr+r.stdout, "s3cret") {
				t.Errorf("the password is shown: %q", r.stderr)
			}
		})
	}
	// The password of --read-store comes from $WHYCACHE_PASSWORD as for
	// --store, and is never shown: a refused login names the DSN
	// without it.
	r := runIn(t, nil, "--store", "mysql:u@tcp(127.0.0.1:1)/db", "--read-store", "mysql:u:s3cret@tcp(127.0.0.1:1)/db", "--state", state, "stats")
	if r.code == 0 || strings.Contains(r.stderr+r.stdout, "s3cret") {
		t.Errorf("unreachable servers: exit %d, stderr %q (want a failure that does not show the password)", r.code, r.stderr)
	}
}
