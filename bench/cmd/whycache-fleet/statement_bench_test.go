package main

import (
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

// BenchmarkServerCPU measures what one statement costs the server: the CPU
// time of a private mariadbd per operation, one connection, run in a loop
// (the figure behind "server CPU per poll" in bench/README.md). Sub-
// benchmarks: SELECT 1; the prepared point SELECT of the meta row; a
// follower's poll at the log's latest position (nothing new, the idle
// case), through MySQLStore.Poll; the same poll answered from the query
// cache (the server runs with it on; the connection turns it off for the
// others).
//
//	go test -run '^$' -bench ServerCPU -benchtime 5000x ./cmd/whycache-fleet
func BenchmarkServerCPU(b *testing.B) {
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		b.Skip("mariadb-install-db not installed")
	}
	ctx := context.Background()
	srv, err := privateServer(ctx, b.TempDir(), "bench", 0, 100, []string{"--query-cache-type=1", "--query-cache-size=16M"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.close()
	db, err := openDB(ctx, srv.dsn, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	store, err := whycache.NewMySQLStore(db, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateTable(ctx); err != nil {
		b.Fatal(err)
	}
	inst, err := whycache.Open(store, whycache.Options{StatePath: filepath.Join(b.TempDir(), "s.state")})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close()
	for n := range 200 {
		if _, err := inst.Set(ctx, key(n), value(n)); err != nil {
			b.Fatal(err)
		}
	}
	res, err := store.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	meta, err := db.PrepareContext(ctx, "SELECT next_id FROM bench_meta WHERE one = 1")
	if err != nil {
		b.Fatal(err)
	}
	defer meta.Close()
	pid := strconv.Itoa(srv.pid)
	pollIdle := func() error {
		_, err := store.Poll(ctx, logstore.PollRequest{After: res.Latest}, func(logstore.Entry) error { return nil })
		return err
	}
	for _, bc := range []struct {
		name   string
		cached bool
		op     func() error
	}{
		{"Select1", false, func() error { var x int; return db.QueryRowContext(ctx, "SELECT 1").Scan(&x) }},
		{"PointSelect", false, func() error { var x int; return meta.QueryRowContext(ctx).Scan(&x) }},
		{"PollIdle", false, pollIdle},
		{"PollIdleCached", true, pollIdle},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// The pool holds one connection: the session's setting holds
			// for the statements that follow.
			if _, err := db.ExecContext(ctx, "SET SESSION query_cache_type = "+map[bool]string{false: "OFF", true: "ON"}[bc.cached]); err != nil {
				b.Fatal(err)
			}
			hits := queryCacheHits(b, db)
			before, err := cpuTime(pid)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := bc.op(); err != nil {
					b.Fatal(fmt.Errorf("%s: %w", bc.name, err))
				}
			}
			after, _ := cpuTime(pid)
			b.ReportMetric(float64((after-before).Microseconds())/float64(b.N), "server-µs/op")
			b.ReportMetric(float64(queryCacheHits(b, db)-hits)/float64(b.N), "cache-hits/op")
		})
	}
}

// queryCacheHits returns the server's Qcache_hits.
func queryCacheHits(b *testing.B, db *sql.DB) int64 {
	b.Helper()
	c, err := readCounters(context.Background(), db, "GLOBAL", []string{"Qcache_hits"})
	if err != nil {
		b.Fatal(err)
	}
	return c["Qcache_hits"]
}
