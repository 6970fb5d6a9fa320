package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/proc"
	"github.com/whycache/whycache/logstore"
)

// Shape of the faults scenario.
const (
	faultMachines          = 2         // state files
	faultWritersPerMachine = 2         // fault writer processes per state file
	faultSegmentSize       = 256 << 10 // file store segments, small so that they roll often
)

// faultKind is one kind of operator fault.
type faultKind struct {
	name     string
	fileOnly bool
	// expect lists the error kinds (errKind) writers may report while the
	// fault is injected, and until the next fault starts: what the fault
	// makes them meet. Any other error fails the run.
	expect []string
	// rebuilds is set when the fault may make an Update rebuild the state.
	rebuilds bool
	// run injects the fault, checks what it should cause, repairs it and
	// checks that everything converged (faultRun.converge). It returns a
	// short description of the variant it chose.
	run func(r *faultRun) (string, error)
}

// faultKinds are the faults, in the order the summary lists them.
var faultKinds = []faultKind{
	// A restore may take away a commit between a writer's commit and its
	// read back: the writer then reports the log went backwards.
	{name: "restore", run: faultRestore, rebuilds: true,
		expect: []string{"corrupt", "no-log", "not-exist", "log-diverged"}},
	{name: "other-log", run: faultOtherLog},
	{name: "flipped-byte", run: faultFlippedByte, expect: []string{"corrupt"}},
	{name: "lost-manifest", run: faultLostManifest, fileOnly: true, expect: []string{"corrupt"}},
	{name: "stopped-writer", run: faultStoppedWriter, expect: []string{"deadline", "commit-unknown"}},
	{name: "removed-state", run: faultRemovedState},
	{name: "old-snapshot", run: faultOldSnapshot},
}

// faultMachine is one state file, with the parent's own instance on it
// and its own store handle (as another machine would have).
type faultMachine struct {
	name       string
	state      string
	store      logstore.Store
	closeStore func()
	inst       *whycache.Instance
}

// faultWriter is a fault writer child process on a machine.
type faultWriter struct {
	c      *proc.Child
	m      *faultMachine
	paused bool
}

func (w *faultWriter) String() string { return fmt.Sprintf("%s (pid %d)", w.c.Name, w.c.Pid()) }

// faultRun is one run of the faults scenario. Its methods are called from
// the scenario's goroutine only.
type faultRun struct {
	t        *torture
	ctx      context.Context
	log      logRef
	work     string  // directory for backups, dumps, probe states
	db       *sql.DB // MySQL: the parent's own pool, for the operator's statements
	dumpTool string  // MySQL: mariadb-dump or mysqldump, "" if neither is installed
	// clientTool is the client that loads a dump (mariadb or mysql).
	clientTool string
	machines   []*faultMachine
	writers    []*faultWriter
	n          int // sequence for names of backups, probes, other logs

	// allowed are the error kinds writers may report now, rebuildOK
	// whether their Updates may rebuild (see faultKind).
	allowed   map[string]bool
	rebuildOK bool
	current   string // the fault being injected
	// pending are acknowledged writes the log must hold at the next
	// check.
	pending []faultAck
	// vanished are keys a machine had (at the record id) that were gone
	// after a fault that must not move keys back: the log must hold a
	// later record of each (a delete).
	vanished map[string]uint64

	// history lists the faults injected so far, with their variants, for
	// the message of a failure.
	history []string

	// Counts for the summary.
	faults                   map[string]int
	restores                 map[string]int // by method/commits after
	flips                    map[string]int // by where the byte was
	rebuilds, writerRebuilds int
	errs                     map[string]map[string]int // by fault, then what failed and how (see seen)
	ops                      uint64
	refused                  uint64 // operations of writers on another log, all refused
	checks, keys, acked      int
	stops, stopsInBatch      int
	ackedPastDamage          int // writes acknowledged while the file store's tail was damaged
	movedChecks              int
}

// faultsScenario runs faultWritersPerMachine fault writers on each of
// faultMachines state files over one log, and injects operator faults one
// at a time (every kind once, in random order, then random kinds until d
// has passed), checking after each what it caused and that everything
// converged again.
func faultsScenario(ctx context.Context, t *torture, n int, d time.Duration) (string, error) {
	log, dir, cleanup, err := newRunFiles(ctx, t.cfg, "faults", n)
	if err != nil {
		return "", err
	}
	defer cleanup()
	r := &faultRun{t: t, ctx: ctx, log: log, faults: map[string]int{}, restores: map[string]int{}, flips: map[string]int{}, errs: map[string]map[string]int{}, vanished: map[string]uint64{}}
	if log.dir != "" {
		r.log.segment = faultSegmentSize
		r.work = filepath.Dir(log.dir)
	} else {
		if r.work, err = os.MkdirTemp(t.cfg.dir, "whycache-torture-faults-"); err != nil {
			return "", fmt.Errorf("whycache-torture: %w", err)
		}
		defer os.RemoveAll(r.work)
		if r.db, err = sql.Open("mysql", log.dsn); err != nil {
			return "", fmt.Errorf("whycache-torture: %w", err)
		}
		defer r.db.Close()
		r.dumpTool, r.clientTool = findMySQLTools()
	}
	defer r.close()

	states, err := newStates(ctx, dir, r.log, faultMachines)
	if err != nil {
		return "", err
	}
	for i, state := range states {
		m := &faultMachine{name: fmt.Sprintf("machine%d", i+1), state: state}
		if m.store, m.closeStore, err = r.log.openExisting(); err != nil {
			return "", err
		}
		r.machines = append(r.machines, m)
		if m.inst, err = whycache.Open(m.store, whycache.Options{StatePath: state}); err != nil {
			return "", err
		}
		for range faultWritersPerMachine {
			w, err := r.startWriter(m, r.log)
			if err != nil {
				return "", err
			}
			r.writers = append(r.writers, w)
		}
	}

	var kinds []faultKind
	for _, k := range faultKinds {
		if (!k.fileOnly || log.dir != "") && (len(t.cfg.faults) == 0 || slices.Contains(t.cfg.faults, k.name)) {
			kinds = append(kinds, k)
		}
	}

	order := t.rng.Perm(len(kinds))
	deadline := time.Now().Add(d)
	prev := faultKind{}
	for i := 0; i < len(kinds) || time.Now().Before(deadline); i++ {
		// Every kind once, then random kinds, a third of them restores
		// (the fault with the most variants).
		k := kinds[t.rng.IntN(len(kinds))]
		if i < len(kinds) {
			k = kinds[order[i]]
		} else if t.rng.IntN(3) == 0 && kinds[0].name == "restore" {
			k = kinds[0]
		}
		r.begin(prev, k)
		prev = k
		if !sleep(ctx, t.randomDuration(50*time.Millisecond, 200*time.Millisecond)) {
			return "", ctx.Err()
		}
		variant, err := k.run(r)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("fault %d, %s %s (after %s; errors seen during it: %s): %w",
				i+1, k.name, variant, listOrNone(r.history), listOrNone(r.seenDuring(k.name)), err)
		}
		r.faults[k.name]++
		r.history = append(r.history, strings.TrimSpace(k.name+" "+variant))
	}
	r.current = "end of the run"
	if err := r.converge(); err != nil {
		return "", fmt.Errorf("at the end of the run: %w", err)
	}
	if err := r.stopWriters(); err != nil {
		return "", err
	}
	return r.summary(), nil
}

// begin sets what writers may meet from now on: what the previous fault
// (whose aftermath may still show) and fault k make them meet.
func (r *faultRun) begin(prev, k faultKind) {
	r.current = k.name
	r.allowed = map[string]bool{}
	for _, kind := range append(append([]string{}, prev.expect...), k.expect...) {
		r.allowed[kind] = true
	}
	r.rebuildOK = prev.rebuilds || k.rebuilds
}

// seen counts n errors described by what during the current fault.
func (r *faultRun) seen(what string, n int) {
	if r.errs[r.current] == nil {
		r.errs[r.current] = map[string]int{}
	}
	r.errs[r.current][what] += n
}

// seenDuring lists the errors counted during fault kind.
func (r *faultRun) seenDuring(kind string) []string {
	var parts []string
	for what, n := range r.errs[kind] {
		parts = append(parts, fmt.Sprintf("%s %d", what, n))
	}
	sort.Strings(parts)
	return parts
}

// seq returns a new number for names.
func (r *faultRun) seq() int { r.n++; return r.n }

// startWriter starts a fault writer on machine m's state and log, and
// waits until it is ready.
func (r *faultRun) startWriter(m *faultMachine, log logRef) (*faultWriter, error) {
	args := []string{"--role", roleFaultWriter, "--state", m.state, "--seed", strconv.FormatUint(r.t.rng.Uint64(), 10)}
	args = append(args, log.flags()...)
	c, err := proc.Start(r.ctx, "fault writer on "+m.name, r.t.exe, args, append(log.env(), childEnv+"=1"))
	if err != nil {
		return nil, err
	}
	c.Timeout = time.Minute
	w := &faultWriter{c: c, m: m}
	var rep faultReport
	if err := c.Recv(&rep); err != nil {
		return nil, err
	}
	if rep.Event != "ready" {
		c.Kill()
		return nil, fmt.Errorf("whycache-torture: %v sent %q, want ready", w, rep.Event)
	}
	return w, nil
}

// request sends cmd to w and returns its reply, which must be want.
func (r *faultRun) request(w *faultWriter, cmd, want string) (faultReport, error) {
	var rep faultReport
	if err := w.c.Send(faultCmd{Cmd: cmd}); err != nil {
		return rep, err
	}
	if err := w.c.Recv(&rep); err != nil {
		return rep, err
	}
	if rep.Event != want {
		return rep, fmt.Errorf("whycache-torture: %v answered %q to %q, want %q", w, rep.Event, cmd, want)
	}
	return rep, nil
}

// absorb counts a writer's report and fails on what the current fault
// does not explain: an error of another kind, or a rebuild. With keep,
// its acknowledged writes must be in the log at the next check; without,
// they may have been lost (by a restore).
func (r *faultRun) absorb(w *faultWriter, rep faultReport, keep bool) error {
	r.ops += rep.Ops
	var bad []string
	kinds := make([]string, 0, len(rep.Errors))
	for kind := range rep.Errors {
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		count := rep.Errors[kind]
		r.seen("writers "+kind, count)
		if !r.allowed[kind] {
			bad = append(bad, fmt.Sprintf("%d %s errors (first: %s)", count, kind, rep.Samples[kind]))
		}
	}
	for cause, count := range rep.Rebuilds {
		r.rebuilds += count
		r.writerRebuilds += count
		switch {
		case !r.rebuildOK:
			bad = append(bad, fmt.Sprintf("%d rebuilds of its state (cause: %s) though the log did not go backwards", count, cause))
		case cause != "log-diverged":
			bad = append(bad, fmt.Sprintf("%d rebuilds of its state because of %s, want log-diverged (nothing compacts the log)", count, cause))
		}
	}
	if keep {
		r.pending = append(r.pending, rep.Acks...)
	}
	if len(bad) > 0 {
		return fmt.Errorf("whycache-torture: %v, during %s: %s", w, r.current, strings.Join(bad, "; "))
	}
	return nil
}

// pauseAll pauses every running writer and returns the writes they
// acknowledged since their last report (kept for the next check if keep).
func (r *faultRun) pauseAll(keep bool) ([]faultAck, error) {
	var acks []faultAck
	for _, w := range r.writers {
		if w.paused {
			continue
		}
		rep, err := r.request(w, "pause", "paused")
		if err != nil {
			return nil, err
		}
		w.paused = true
		acks = append(acks, rep.Acks...)
		if err := r.absorb(w, rep, keep); err != nil {
			return nil, err
		}
	}
	return acks, nil
}

// resumeAll lets every paused writer go on.
func (r *faultRun) resumeAll() error {
	for _, w := range r.writers {
		if !w.paused {
			continue
		}
		if err := w.c.Send(faultCmd{Cmd: "resume"}); err != nil {
			return err
		}
		w.paused = false
	}
	return nil
}

// epochAll asks every running writer for its report: the writes each
// acknowledges afterwards began after this call. keep is as for absorb.
func (r *faultRun) epochAll(keep bool) error {
	for _, w := range r.writers {
		if w.paused {
			continue
		}
		rep, err := r.request(w, "epoch", "epoch")
		if err != nil {
			return err
		}
		if err := r.absorb(w, rep, keep); err != nil {
			return err
		}
	}
	return nil
}

// stopWriters ends every writer, counting its last report, and checks
// that it exits cleanly.
func (r *faultRun) stopWriters() error {
	for _, w := range r.writers {
		rep, err := r.request(w, "stop", "done")
		if err != nil {
			return err
		}
		if err := r.absorb(w, rep, false); err != nil {
			return err
		}
		if err := w.c.Finish(); err != nil {
			return err
		}
	}
	r.writers = nil
	return nil
}

// close kills what is left of the run's processes, closes its instances
// and stores, and drops the copies of MySQL tables a failed restore may
// have left.
func (r *faultRun) close() {
	for _, w := range r.writers {
		w.c.Kill()
	}
	for _, m := range r.machines {
		if m.inst != nil {
			m.inst.Close()
		}
		m.closeStore()
	}
	if r.db != nil {
		for _, t := range mysqlTables(r.log.table) {
			for _, prefix := range []string{"bak_", "rst_", "old_"} {
				r.db.ExecContext(context.Background(), "DROP TABLE IF EXISTS `"+prefix+t+"`")
			}
		}
	}
}

// summary is the run's line: the faults injected and what was observed.
func (r *faultRun) summary() string {
	var faults []string
	total := 0
	for _, k := range faultKinds {
		if n := r.faults[k.name]; n > 0 {
			faults = append(faults, fmt.Sprintf("%s %d", k.name, n))
			total += n
		}
	}
	counts := func(m map[string]int) string {
		var parts []string
		for kind, n := range m {
			parts = append(parts, fmt.Sprintf("%s %d", kind, n))
		}
		sort.Strings(parts)
		return listOrNone(parts)
	}
	flips := counts(r.flips)
	if r.flips["tail"] > 0 {
		flips += fmt.Sprintf(" (%d writes acknowledged while the tail was damaged)", r.ackedPastDamage)
	}
	var errs []string
	for _, k := range append(faultKinds, faultKind{name: "end of the run"}) {
		if seen := r.seenDuring(k.name); len(seen) > 0 {
			errs = append(errs, k.name+" ("+strings.Join(seen, ", ")+")")
		}
	}
	return fmt.Sprintf("%d faults (%s); restores: %s; flipped bytes: %s; %d rebuilds (%d by writers); running writers stopped in a batch %d of %d times, a holder stopped in its batch each time; "+
		"%d operations, %d more through another log all refused; errors seen: %s; %d keys checked not to move back; %d checks: %d keys compared, %d acknowledged writes found in the log",
		total, strings.Join(faults, ", "), counts(r.restores), flips, r.rebuilds, r.writerRebuilds, r.stopsInBatch, r.stops,
		r.ops, r.refused, listOrNone(errs), r.movedChecks, r.checks, r.keys, r.acked)
}

// listOrNone returns the items of list separated by commas, or "none".
func listOrNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}
