package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/peers"
	"github.com/whycache/whycache/redisnotify"
)

// config is what the flags ask for.
type config struct {
	followers int
	interval  time.Duration
	rate      int
	duration  time.Duration // the measured window
	warmup    time.Duration
	stall     time.Duration
	notify    bool
	replica   bool
	private   bool // a private MariaDB instead of -dsn's
	maxConns  int  // max_connections of private servers
	dsn       string
	bin       string // a prebuilt whycache binary, or "" to build one
	tick      time.Duration
	baseline  time.Duration // the writer alone, then the followers idle

	procs      int        // the followers' --procs; 0 is Go's default
	serverArgs stringList // extra mariadbd options of private servers
	queryCache string     // query_cache_size of private servers, with the cache on; "" leaves it off
	command    string     // the command line, for the report
}

// check validates the flags.
func (c config) check() error {
	switch {
	case c.followers < 1:
		return errors.New("-followers: want at least 1")
	case c.interval < 10*time.Millisecond:
		return errors.New("-interval: want at least 10ms (the follow command's minimum)")
	case c.rate < 1:
		return errors.New("-rate: want at least 1 set per second")
	case c.duration <= 0 || c.warmup < 0 || c.baseline < 0:
		return errors.New("-duration must be positive, -warmup and -baseline not negative")
	case c.stall > 0 && !c.replica:
		return errors.New("-stall needs -replica (it stops the replica's replication)")
	case c.stall >= c.duration:
		return errors.New("-stall must be shorter than -duration (it runs in its middle)")
	}
	return nil
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// tempDir makes a private directory under /dev/shm when it exists (state
// files belong on tmpfs), else under the default temporary directory.
func tempDir(shm bool) (string, error) {
	if shm {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			return os.MkdirTemp("/dev/shm", "whycache-fleet-")
		}
	}
	return os.MkdirTemp("", "whycache-fleet-")
}

// run runs the benchmark once and returns its report. Progress goes to
// logf. Failed checks (a follower that did not converge, a state that
// claims records it does not hold) are listed in Report.Failures; the
// error is for a run that could not be made.
func run(ctx context.Context, cfg config, logf func(string, ...any)) (_ *Report, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	dir, err := tempDir(false)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	stateDir, err := tempDir(true)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stateDir)

	bin := cfg.bin
	if bin == "" {
		logf("building cmd/whycache")
		if bin, err = buildCLI(ctx, dir); err != nil {
			return nil, err
		}
	}
	if cfg.replica {
		ok, err := supportsFlag(ctx, bin, "read-store")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errors.New("-replica: this whycache binary has no global flag --read-store (reads from a replica), so followers cannot read a replica: build it from a tree that has it, or run without -replica")
		}
	}

	// The servers: the followers poll readSrv; the writer commits to primary.
	var primary, readSrv *server
	switch {
	case cfg.replica:
		logf("starting a private MariaDB primary and replica")
		var replica *server
		if primary, replica, err = replicaPair(ctx, dir, cfg.maxConns, cfg.serverArgs); err != nil {
			return nil, err
		}
		defer replica.close()
		readSrv = replica
	case cfg.private:
		logf("starting a private MariaDB")
		if primary, err = privateServer(ctx, dir, "primary", 0, cfg.maxConns, cfg.serverArgs); err != nil {
			return nil, err
		}
		readSrv = primary
	default:
		if primary, err = sharedServer(ctx, cfg.dsn); err != nil {
			return nil, err
		}
		readSrv = primary
	}
	defer primary.close()

	r := &Report{
		Command: cfg.command, Machine: machine(),
		Followers: cfg.followers, Procs: cfg.procs, Interval: cfg.interval.String(), Rate: cfg.rate,
		Notify: cfg.notify, Replica: cfg.replica,
		ServerCPU: map[string]float64{},
	}
	var version string
	primary.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version)
	r.Server = version + " (" + primary.name + ")"

	table := fmt.Sprintf("fleet_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	spec := fleetSpec{bin: bin, dir: stateDir, store: "mysql:" + primary.dsn, table: table, interval: cfg.interval, heartbeat: cfg.replica, procs: cfg.procs}
	if cfg.replica {
		spec.readStore = "mysql:" + readSrv.dsn
	}
	if out, err := runCLI(ctx, spec, "init-schema"); err != nil {
		return nil, fmt.Errorf("whycache init-schema: %v: %s", err, out)
	}
	defer dropTables(primary, table)

	var notifier *redisnotify.Notifier
	if cfg.notify {
		logf("starting redis-server")
		env, stop, err := peers.Redis{}.Start(ctx, dir)
		if err != nil {
			return nil, err
		}
		defer stop()
		spec.notifyAddr, spec.channel = env.Addr, "whycache-fleet:"+table
		if notifier, err = redisnotify.New(redisnotify.Options{Addr: env.Addr, Channel: spec.channel}); err != nil {
			return nil, err
		}
		defer notifier.Close()
	}

	// The writer: one connection, so that its session counts its statements;
	// with the DSN options package mysqlstore recommends.
	wdsn, err := interpolated(primary.dsn)
	if err != nil {
		return nil, err
	}
	wdb, err := openDB(ctx, wdsn, 1)
	if err != nil {
		return nil, err
	}
	defer wdb.Close()
	store, err := whycache.NewMySQLStore(wdb, table)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	opts := whycache.Options{StatePath: filepath.Join(stateDir, "writer.state")}
	if notifier != nil {
		opts.Notifier = notifier
	}
	inst, err := whycache.Open(store, opts)
	if err != nil {
		return nil, err
	}
	defer inst.Close()
	id0, err := inst.Set(ctx, key(0), value(0))
	if err != nil {
		return nil, fmt.Errorf("first write: %w", err)
	}
	writes := []write{{n: 0, id: id0}}
	next := 1 // the next write's number

	servers := []*server{primary}
	monitors := [][]*sql.DB{{primary.db}}
	withWriter := [][]*sql.DB{{primary.db, wdb}}
	if readSrv != primary {
		servers = append(servers, readSrv)
		monitors = append(monitors, []*sql.DB{readSrv.db})
		withWriter = append(withWriter, []*sql.DB{readSrv.db})
	}

	// The writer alone, before any follower runs: what the server spends
	// on the commits.
	if cfg.baseline > 0 {
		logf("writer alone for %s", cfg.baseline)
		w, err := openWindow(ctx, servers, monitors)
		if err != nil {
			return nil, err
		}
		wr := startWriter(ctx, inst, cfg.rate, next)
		err = sleepCtx(ctx, cfg.baseline)
		wr.finish()
		if err != nil {
			return nil, err
		}
		ph, err := w.close(ctx)
		if err != nil {
			return nil, err
		}
		r.WriterAlone = &ph
		writes = append(writes, wr.writes...)
		next += len(wr.writes) + wr.errors
		id0 = writes[len(writes)-1].id
	}

	if err := checkRoom(ctx, readSrv.db, cfg.followers); err != nil {
		return nil, err
	}
	baseConns, err := threadsConnected(ctx, readSrv.db)
	if err != nil {
		return nil, err
	}
	logf("starting %d followers (interval %s)", cfg.followers, cfg.interval)
	fleet, err := startFleet(spec, cfg.followers)
	if err != nil {
		return nil, err
	}
	defer closeStates(fleet)
	defer stopFleet(fleet)
	if err := waitReady(ctx, fleet, store, id0, 60*time.Second+time.Duration(cfg.followers)*200*time.Millisecond); err != nil {
		return nil, err
	}
	n := float64(cfg.followers)
	polls := func(secs float64) float64 { return n * secs / cfg.interval.Seconds() }

	// The followers alone, nothing to fetch: what polls cost.
	if cfg.baseline > 0 {
		logf("followers idle for %s", cfg.baseline)
		w, err := openWindow(ctx, servers, withWriter)
		if err != nil {
			return nil, err
		}
		if err := sleepCtx(ctx, cfg.baseline); err != nil {
			return nil, err
		}
		ph, err := w.close(ctx)
		if err != nil {
			return nil, err
		}
		r.Idle = &ph
		r.IdlePerPoll = float64(ph.Statements[readSrv.name]["Questions"]) / polls(ph.Seconds)
	}

	logf("writing %d sets/s; warm-up %s, measuring %s", cfg.rate, cfg.warmup, cfg.duration)
	watch := startWatcher(fleet, cfg.tick)
	wr := startWriter(ctx, inst, cfg.rate, next)
	writerDone := false
	defer func() {
		if !writerDone {
			wr.finish()
			watch.finish()
		}
	}()
	if err := sleepCtx(ctx, cfg.warmup); err != nil {
		return nil, err
	}

	// The measured window.
	win, err := openWindow(ctx, servers, withWriter)
	if err != nil {
		return nil, err
	}
	var followerPids []string
	for _, f := range fleet {
		followerPids = append(followerPids, f.pid())
	}
	followerCPU, selfCPU := startCPU(followerPids), startCPU([]string{"self"})
	wr.measure.Store(true)
	start := time.Now()
	var conns int64
	if cfg.stall > 0 {
		if err := sleepCtx(ctx, (cfg.duration-cfg.stall)/2); err != nil {
			return nil, err
		}
		conns, _ = threadsConnected(ctx, readSrv.db)
		logf("stopping replication for %s", cfg.stall)
		r.Stall, err = stall(ctx, primary.db, readSrv.db, spec, fleet[0].state, cfg.stall)
		if err != nil {
			return nil, err
		}
	} else {
		if err := sleepCtx(ctx, cfg.duration/2); err != nil {
			return nil, err
		}
		conns, _ = threadsConnected(ctx, readSrv.db)
	}
	if err := sleepCtx(ctx, cfg.duration-time.Since(start)); err != nil {
		return nil, err
	}
	wr.measure.Store(false)
	end := time.Now()
	fc, bc := followerCPU.stop(), selfCPU.stop()
	if r.Window, err = win.close(ctx); err != nil {
		return nil, err
	}
	var rss []float64
	for _, f := range fleet {
		if b, err := residentBytes(f.pid()); err == nil {
			rss = append(rss, float64(b)/(1<<20))
		}
	}
	wr.finish()
	writerDone = true

	last := writes[len(writes)-1].id
	if k := len(wr.writes); k > 0 {
		last = wr.writes[k-1].id
	}
	logf("waiting for every follower to reach record %d", last)
	took, behind := waitConverged(ctx, fleet, last, max(15*time.Second, 10*cfg.interval))
	watch.finish()
	stopFleet(fleet)

	// Figures.
	r.Duration = r.Window.Seconds
	r.WriteErrors = wr.errors
	if wr.firstErr != nil {
		r.Failures = append(r.Failures, fmt.Sprintf("%d writes failed, the first with: %v", wr.errors, wr.firstErr))
	}
	p := watch.match(wr.writes)
	for _, w := range wr.writes {
		if w.measured {
			r.Writes++
		}
	}
	r.Propagation = summarize(p)
	if len(p.applied) > 0 {
		r.Applied = &Propagation{P50ms: ms(percentile(p.applied, 0.5)), P99ms: ms(percentile(p.applied, 0.99)), MaxMs: ms(percentile(p.applied, 1)), Samples: len(p.applied)}
	}
	if st := r.Stall; st != nil {
		var outside []write
		for _, w := range wr.writes {
			if w.returned.Before(st.from) || w.returned.After(st.to) {
				outside = append(outside, w)
			}
		}
		o := summarize(watch.match(outside))
		r.OutsideStall = &o
	}
	r.Statements = r.Window.Statements[readSrv.name]
	r.PerFollowerPerSecond = r.Window.perSecond(readSrv.name, "Questions") / n
	r.SelectsPerFollowerS = r.Window.perSecond(readSrv.name, "Com_select") / n
	r.PerPoll = float64(r.Statements["Questions"]) / polls(r.Window.Seconds)
	r.ConnectionsPerFollower = float64(conns-baseConns) / n
	r.ServerCPU = r.Window.ServerCPU
	for _, c := range fc {
		r.FollowerCPUSum += c
		r.FollowerCPUMax = max(r.FollowerCPUMax, c)
	}
	r.FollowerCPUMean = r.FollowerCPUSum / n
	r.BenchCPU = bc[0]
	for _, b := range rss {
		r.RSSMeanMiB += b / float64(len(rss))
		r.RSSMaxMiB = max(r.RSSMaxMiB, b)
	}
	r.WatcherScans, r.WatcherMaxScan = watch.scans, ms(watch.maxScan)
	slices.Sort(watch.gaps)
	r.WatcherGapP99, r.WatcherGapMax = ms(percentile(watch.gaps, 0.99)), ms(percentile(watch.gaps, 1))
	gaps := watch.pollGaps(start, end)
	r.PollGapP50, r.PollGapP99, r.PollGapMax = ms(percentile(gaps, 0.5)), ms(percentile(gaps, 0.99)), ms(percentile(gaps, 1))
	r.ConvergedAfter, r.Behind = took.Seconds(), behind
	if len(behind) > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d followers had not reached record %d %.1f s after the last write: %v", len(behind), last, took.Seconds(), behind))
	}
	if r.Propagation.FollowersSeen < cfg.followers {
		r.Failures = append(r.Failures, fmt.Sprintf("only %d of %d followers were seen holding a measured write", r.Propagation.FollowersSeen, cfg.followers))
	}

	// No state claims an update id whose records it does not hold.
	writes = append(writes, wr.writes...)
	for _, f := range fleet {
		k, err := verifyState(f.inst, writes)
		if err != nil {
			r.Failures = append(r.Failures, fmt.Sprintf("follower %d: %v", f.index, err))
			continue
		}
		r.StatesVerified++
		r.KeysChecked = k
	}
	return r, nil
}

// runCLI runs the whycache binary on the fleet's store and table with
// args and returns its combined output.
func runCLI(ctx context.Context, spec fleetSpec, args ...string) (string, error) {
	a := append([]string{"--store", spec.store, "--table", spec.table}, args...)
	out, err := exec.CommandContext(ctx, spec.bin, a...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// dropTables drops the log's tables on the primary.
func dropTables(s *server, table string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, t := range []string{table, table + "_meta", table + "_marks"} {
		s.db.ExecContext(ctx, "DROP TABLE IF EXISTS `"+t+"`")
	}
}
