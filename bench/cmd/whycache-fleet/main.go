// Command whycache-fleet measures a fleet of machines following one MySQL
// log: N `whycache follow` processes (one per simulated machine, each with
// its own state file) poll a log table while a paced writer in this
// process commits distinct keys. It reports:
//
//   - propagation: for every write and every follower, the time from Set
//     returning until that follower's state holds the write, seen by one
//     goroutine that scans every follower's state (mapped read-only) every
//     -tick; p50, p99 and max;
//   - statements per follower per second and per scheduled poll, from the
//     server's global status (Questions, Com_select, ...) less the
//     benchmark's own sessions;
//   - server CPU (mariadbd's utime+stime over the window, % of one core),
//     follower CPU (sum, mean, max) and RSS (mean, max), connections per
//     follower;
//   - after the writes: how long until every follower holds the last one,
//     and that no state claims an update id whose records it does not hold
//     (each state's keys compared with the writes at its update id).
//
// Options: -notify starts a redis-server and runs the followers with
// --notify (the writer announces each commit); -private runs a MariaDB of
// its own (max_connections -max-connections) instead of -dsn's; -replica
// runs a private primary and replica pair, followers reading the replica
// with --read-store, one of them writing heartbeats; -stall D stops
// replication for D in the middle of the window and samples the lag
// follower 0's `whycache stats` reports; -query-cache SIZE runs the
// private servers with the query cache on (README's fleet settings).
//
// Usage (from the bench directory):
//
//	go run ./cmd/whycache-fleet -followers 200 -interval 100ms -private -query-cache 16M
//	go run ./cmd/whycache-fleet -followers 200 -interval 1s -notify -private -query-cache 16M
//	go run ./cmd/whycache-fleet -followers 50 -replica -stall 20s -duration 40s -query-cache 16M
//
// Results print as a table; -json FILE appends the report to a JSON array
// in FILE. The exit status is 1 when a check failed, 2 when the run could
// not be made.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// mainArgs parses args, runs the benchmark and returns the exit status.
func mainArgs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("whycache-fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var jsonOut string
	fs.IntVar(&cfg.followers, "followers", 200, "follower processes (simulated machines)")
	fs.DurationVar(&cfg.interval, "interval", 100*time.Millisecond, "the followers' poll --interval")
	fs.IntVar(&cfg.rate, "rate", 100, "sets per second of the writer")
	fs.DurationVar(&cfg.duration, "duration", 30*time.Second, "the measured window")
	fs.DurationVar(&cfg.warmup, "warmup", 3*time.Second, "writes before the measured window")
	fs.DurationVar(&cfg.baseline, "baseline", 5*time.Second, "measure the writer alone, then the followers without writes, this long each (0: skip)")
	fs.DurationVar(&cfg.stall, "stall", 0, "stop replication for this long in the middle of the window (needs -replica)")
	fs.BoolVar(&cfg.notify, "notify", false, "start a redis-server; followers wake on the writer's announcements (--notify)")
	fs.BoolVar(&cfg.replica, "replica", false, "start a private MariaDB primary and replica; followers read the replica (--read-store)")
	fs.BoolVar(&cfg.private, "private", false, "start a private MariaDB instead of using -dsn's server")
	fs.IntVar(&cfg.maxConns, "max-connections", 1000, "max_connections of the private servers")
	fs.IntVar(&cfg.procs, "procs", 1, "the followers' --procs, their GOMAXPROCS (0: Go's default, the number of cores)")
	fs.StringVar(&cfg.queryCache, "query-cache", "", "the private servers' query_cache_size, e.g. 16M, with query_cache_type on (empty: the server's default, off)")
	fs.Var(&cfg.serverArgs, "server-arg", "an extra mariadbd option for the private servers, e.g. --thread-handling=pool-of-threads (repeatable)")
	fs.StringVar(&cfg.dsn, "dsn", "root@tcp(127.0.0.1:3306)/test", "the MySQL server without -private or -replica")
	fs.StringVar(&cfg.bin, "whycache", "", "a whycache binary to run (default: build cmd/whycache)")
	fs.DurationVar(&cfg.tick, "tick", time.Millisecond, "how often the watcher scans the followers' states")
	fs.StringVar(&jsonOut, "json", "", "append the report to the JSON array in `FILE`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.queryCache != "" {
		cfg.serverArgs = append(cfg.serverArgs, "--query-cache-type=1", "--query-cache-size="+cfg.queryCache)
	}
	cfg.command = "go run ./cmd/whycache-fleet"
	fs.Visit(func(f *flag.Flag) { // the flags given, without -json
		if f.Name != "json" {
			cfg.command += " -" + f.Name + "=" + f.Value.String()
		}
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(f string, a ...any) {
		fmt.Fprintf(stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(f, a...))
	}
	r, err := run(ctx, cfg, logf)
	if err != nil {
		fmt.Fprintf(stderr, "whycache-fleet: %v\n", err)
		return 2
	}
	r.writeTable(stdout)
	if jsonOut != "" {
		if err := r.writeJSON(jsonOut); err != nil {
			fmt.Fprintf(stderr, "whycache-fleet: %v\n", err)
			return 2
		}
	}
	if len(r.Failures) > 0 {
		return 1
	}
	return 0
}
