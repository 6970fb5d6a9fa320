package main

import (
	"context"
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
// case), through MySQLStore.Poll.
//
//	go test -run '^$' -bench ServerCPU -benchtime 5000x ./cmd/whycache-fleet
func BenchmarkServerCPU(b *testing.B) {
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		b.Skip("mariadb-install-db not installed")
	}
	ctx := context.Background()
	srv, err := privateServer(ctx, b.TempDir(), "bench", 0, 100, nil)
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
	for _, bc := range []struct {
		name string
		op   func() error
	}{
		{"Select1", func() error { var x int; return db.QueryRowContext(ctx, "SELECT 1").Scan(&x) }},
		{"PointSelect", func() error { var x int; return meta.QueryRowContext(ctx).Scan(&x) }},
		{"PollIdle", func() error {
			_, err := store.Poll(ctx, logstore.PollRequest{After: res.Latest}, func(logstore.Entry) error { return nil })
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
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
		})
	}
}
