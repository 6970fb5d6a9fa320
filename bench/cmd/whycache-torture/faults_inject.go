package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/proc"
	"github.com/whycache/whycache/logstore"
)

// Bounds of the stopped-writer fault.
const (
	// faultReadTimeout is the ReadTimeout of the readers facing a stopped
	// writer.
	faultReadTimeout = 250 * time.Millisecond
	// faultStuckSlack is how much longer than faultReadTimeout such a read
	// may take to fail.
	faultStuckSlack = 5 * time.Second
	// faultStopTries is how many times a running writer is stopped at a
	// random instant.
	faultStopTries = 3
)

// faultRestore backs the log up while the writers run, lets them go on,
// and restores the backup: while they run, followed by many of their
// commits ("many"), or while they are paused, followed by 0, 1 or a few
// commits of another machine. Every machine's next Update must rebuild
// (the rebuild wrapping ErrLogDiverged) or fail; then everything
// converges to the restored log. The writes acknowledged before the
// backup and after the restore must be in the log.
func faultRestore(r *faultRun) (string, error) {
	rng := r.t.rng
	after := []string{"0", "1", "few", "many"}[rng.IntN(4)]
	methods := []string{restoreSwap, restoreInPlace}
	if r.log.table != "" && r.dumpTool != "" && after != "many" {
		methods = append(methods, restoreDump)
	}
	method := methods[rng.IntN(len(methods))]
	variant := method + "/" + after
	// The writes acknowledged so far are in the backup.
	if err := r.epochAll(true); err != nil {
		return variant, err
	}
	b, err := r.backupLog(method)
	if b != nil {
		defer r.dropBackup(b)
	}
	if err != nil {
		return variant, err
	}
	// Writes the restore will lose.
	if !sleep(r.ctx, r.t.randomDuration(50*time.Millisecond, 300*time.Millisecond)) {
		return variant, r.ctx.Err()
	}
	r.restores[variant]++
	if after == "many" {
		// A machine past the backup (UpdateID only grows until the
		// restore) must be rebuilt by one of its processes: by an Update,
		// or by a Set that catches up (which reports no rebuild). A
		// rebuild swaps a new state file in.
		applied, file := map[*faultMachine]uint64{}, map[*faultMachine]uint64{}
		for _, m := range r.machines {
			applied[m] = m.inst.UpdateID()
			ino, err := inode(m.state)
			if err != nil {
				return variant, err
			}
			file[m] = ino
		}
		if err := r.restoreLog(b); err != nil {
			return variant, err
		}
		// Writes acknowledged before this may have been lost.
		if err := r.epochAll(false); err != nil {
			return variant, err
		}
		if !sleep(r.ctx, r.t.randomDuration(100*time.Millisecond, 400*time.Millisecond)) {
			return variant, r.ctx.Err()
		}
		if err := r.converge(); err != nil {
			return variant, err
		}
		for _, m := range r.machines {
			ino, err := inode(m.state)
			if err != nil {
				return variant, err
			}
			if applied[m] > b.latest && ino == file[m] {
				return variant, fmt.Errorf("%w: %s had applied record %d, past the backup's last record %d, and its processes went on with the restored log without rebuilding its state (the state file is the same)",
					errLost, m.name, applied[m], b.latest)
			}
		}
		return variant, nil
	}

	if _, err := r.pauseAll(false); err != nil {
		return variant, err
	}
	applied := map[*faultMachine]uint64{}
	for _, m := range r.machines {
		applied[m] = m.inst.UpdateID()
	}
	if err := r.restoreLog(b); err != nil {
		return variant, err
	}
	commits := map[string]int{"0": 0, "1": 1, "few": 2 + rng.IntN(4)}[after]
	if err := r.outsiderWrites(commits); err != nil {
		return variant, err
	}
	for _, m := range r.machines {
		st, err := m.inst.UpdateStats(r.ctx)
		switch {
		case err != nil:
			kind := errKind(err)
			r.seen("next Update "+kind, 1)
			if kind == "other" {
				return variant, fmt.Errorf("whycache-torture: %s: Update after the restore failed with an error that names no cause: %w", m.name, err)
			}
		case st.Rebuilt != nil:
			if !errors.Is(st.Rebuilt, whycache.ErrLogDiverged) {
				return variant, fmt.Errorf("whycache-torture: %s: Update after the restore rebuilt the state because %v, want ErrLogDiverged", m.name, st.Rebuilt)
			}
			r.rebuilds++
		case applied[m] > b.latest:
			return variant, fmt.Errorf("%w: %s had applied record %d, past the backup's last record %d, and its Update after the restore neither rebuilt nor failed (applied %d records)",
				errLost, m.name, applied[m], b.latest, st.Applied)
		}
	}
	return variant, r.converge()
}

// inode returns the inode number of the file at path.
func inode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("whycache-torture: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("whycache-torture: no inode number for %s", path)
	}
	return st.Ino, nil
}

// outsiderWrites commits n Sets through a new machine (its own state file
// and store handle), filled from the log first; they must be in the log
// at the next check.
func (r *faultRun) outsiderWrites(n int) error {
	if n == 0 {
		return nil
	}
	store, closeStore, err := r.log.openExisting()
	if err != nil {
		return err
	}
	defer closeStore()
	state := filepath.Join(r.work, fmt.Sprintf("outsider%d.state", r.seq()))
	defer os.Remove(state)
	inst, err := whycache.Open(store, whycache.Options{StatePath: state})
	if err != nil {
		return err
	}
	defer inst.Close()
	if err := inst.Update(r.ctx); err != nil {
		return fmt.Errorf("whycache-torture: a new machine's Update of the restored log: %w", err)
	}
	w := &writer{inst: inst, rng: r.t.rng, keys: r.t.cfg.keys}
	for range n {
		k, v := w.key(), w.value()
		id, err := inst.Set(r.ctx, k, v)
		if err != nil {
			return fmt.Errorf("whycache-torture: a new machine's Set on the restored log: %w", err)
		}
		r.pending = append(r.pending, faultAck{ID: id, Key: string(k), Hash: valueHash(v)})
	}
	return nil
}

// faultOtherLog points a machine at a log of another identity (a new
// directory or table) while its writers are paused: the parent's Update
// must fail with ErrLogMismatch, its Set and SetMulti too, and a writer
// process started on it fails every operation with ErrLogMismatch; the
// other log stays empty and the machine's state unchanged.
func faultOtherLog(r *faultRun) (string, error) {
	ctx := r.ctx
	if _, err := r.pauseAll(true); err != nil {
		return "", err
	}
	m := r.machines[r.t.rng.IntN(len(r.machines))]
	beforeID, before := m.inst.UpdateID(), contents(m.inst)
	other, drop, err := r.newOtherLog()
	if err != nil {
		return m.name, err
	}
	defer drop()
	store, closeStore, err := other.openExisting()
	if err != nil {
		return m.name, err
	}
	defer closeStore()
	inst, err := whycache.Open(store, whycache.Options{StatePath: m.state})
	if err != nil {
		return m.name, err
	}
	defer inst.Close()
	wantMismatch := func(what string, err error) error {
		if !errors.Is(err, whycache.ErrLogMismatch) {
			return fmt.Errorf("whycache-torture: %s of %s through another log: %v, want ErrLogMismatch", what, m.name, err)
		}
		r.seen(what+" log-mismatch", 1)
		return nil
	}
	if err := wantMismatch("Update", inst.Update(ctx)); err != nil {
		return m.name, err
	}
	_, err = inst.Set(ctx, []byte("k00000"), []byte("through the other log"))
	if err := wantMismatch("Set", err); err != nil {
		return m.name, err
	}
	_, err = inst.SetMulti(ctx, []whycache.Item{{Key: []byte("k00001"), Value: []byte("x")}, {Key: []byte("k00002")}})
	if err := wantMismatch("SetMulti", err); err != nil {
		return m.name, err
	}

	// A writer process configured with the other log.
	w, err := r.startWriter(m, other)
	if err != nil {
		return m.name, err
	}
	defer w.c.Kill()
	if !sleep(ctx, r.t.randomDuration(100*time.Millisecond, 200*time.Millisecond)) {
		return m.name, ctx.Err()
	}
	rep, err := r.request(w, "stop", "done")
	if err != nil {
		return m.name, err
	}
	if err := w.c.Finish(); err != nil {
		return m.name, err
	}
	r.refused += rep.Ops
	for kind, n := range rep.Errors {
		if kind != "log-mismatch" {
			return m.name, fmt.Errorf("whycache-torture: a writer on %s through another log: %d %s errors (first: %s), want only ErrLogMismatch", m.name, n, kind, rep.Samples[kind])
		}
	}
	if rep.Ops == 0 || rep.Errors["log-mismatch"] != int(rep.Ops) || len(rep.Acks) > 0 || len(rep.Rebuilds) > 0 {
		return m.name, fmt.Errorf("%w: a writer on %s through another log: %d operations, %d failed with ErrLogMismatch, %d writes acknowledged, rebuilds %v",
			errLost, m.name, rep.Ops, rep.Errors["log-mismatch"], len(rep.Acks), rep.Rebuilds)
	}
	if latest, err := store.LatestUpdateID(ctx); err != nil || latest != 0 {
		return m.name, fmt.Errorf("%w: the other log holds records up to %d after the refused writes (%v)", errLost, latest, err)
	}
	if id := m.inst.UpdateID(); id != beforeID {
		return m.name, fmt.Errorf("%w: %s moved from record %d to %d through another log", errLost, m.name, beforeID, id)
	}
	if err := compare(m.name+" after the refused Updates through another log", contents(m.inst), before); err != nil {
		return m.name, err
	}
	return m.name, r.converge()
}

// faultFlippedByte flips a byte of an acknowledged record with the
// writers paused. A new machine's Update must fail with ErrCorrupt without
// applying the damaged record or anything after it; the machines' Updates
// fail with ErrCorrupt without applying anything past it, or succeed at
// the log's latest record (the damage is behind them); and the log's Check
// must name where it is. The writers then run against the damage for a while;
// the byte is put back and everything converges.
func faultFlippedByte(r *faultRun) (string, error) {
	ctx := r.ctx
	if _, err := r.pauseAll(true); err != nil {
		return "", err
	}
	fresh, closeFresh, err := r.log.openExisting()
	if err != nil {
		return "", err
	}
	latest, err := fresh.LatestUpdateID(ctx) // every record up to it is acknowledged
	closeFresh()
	if err != nil {
		return "", err
	}
	d, err := r.flipByte()
	if err != nil {
		return "", err
	}
	repaired := false
	defer func() {
		if !repaired {
			r.repair(d)
		}
	}()
	where := "tail"
	if d.path != "" {
		if segs, _ := filepath.Glob(filepath.Join(r.log.dir, "*.seg")); len(segs) > 0 && segs[len(segs)-1] != d.path {
			where = "sealed"
		}
	} else {
		where = "row"
	}

	// A new machine reads the whole log.
	probeAt, probeValid, probeGot, err := r.probeDamage(d)
	if err != nil {
		return where, err
	}
	var probeWant map[string][]byte
	if probeValid {
		fresh, closeFresh, err := r.log.openExisting()
		if err != nil {
			return where, err
		}
		probeWant, err = replayTo(ctx, fresh, probeAt)
		closeFresh()
		if err != nil {
			return where, fmt.Errorf("%w: a new machine stopped by %v applied records up to %d: %w", errLost, d, probeAt, err)
		}
	}
	for _, m := range r.machines {
		was := m.inst.UpdateID()
		err := m.inst.Update(ctx)
		if err != nil && errKind(err) != "corrupt" {
			return where, fmt.Errorf("whycache-torture: %s: Update facing %v: %w, want ErrCorrupt", m.name, d, err)
		}
		if err != nil {
			r.seen("Update corrupt", 1)
		}
		now := m.inst.UpdateID()
		if d.id != 0 && was < d.id && now >= d.id {
			return where, fmt.Errorf("%w: %s applied records %d to %d past %v", errLost, m.name, was+1, now, d)
		}
		if err == nil && now != latest {
			// Success says the state holds the log up to its latest
			// record; stopping short of it must be an error.
			return where, fmt.Errorf("%w: %s's Update facing %v succeeded at record %d, but the log's records up to %d were acknowledged",
				errLost, m.name, d, now, latest)
		}
	}
	if err := r.checkNamesDamage(d); err != nil {
		return where, err
	}
	r.flips[where]++

	if err := r.resumeAll(); err != nil {
		return where, err
	}
	if !sleep(ctx, r.t.randomDuration(100*time.Millisecond, 200*time.Millisecond)) {
		return where, ctx.Err()
	}
	acks, err := r.pauseAll(true)
	if err != nil {
		return where, err
	}
	if where == "tail" {
		// FileStore.Commit's doc says damage to the tail's acknowledged
		// bytes fails every Commit; a writer whose position is past the
		// damage does not read it again. Counted, not failed: the writes
		// are in the log (checked after the repair), and no reader
		// delivers anything past the damage.
		r.ackedPastDamage += len(acks)
	}
	repaired = true
	if err := r.repair(d); err != nil {
		return where, err
	}
	if probeValid {
		if err := compare(fmt.Sprintf("a new machine stopped by %v at record %d", d, probeAt), probeGot, probeWant); err != nil {
			return where, err
		}
	}
	return where, r.converge()
}

// probeDamage fills a new state file from the damaged log: it must fail
// with ErrCorrupt, before the damaged record. It returns where the probe
// stopped, whether its state was filled, and what it holds.
func (r *faultRun) probeDamage(d *logDamage) (at uint64, valid bool, got map[string][]byte, err error) {
	store, closeStore, err := r.log.openExisting()
	if err != nil {
		if errKind(err) != "corrupt" {
			return 0, false, nil, fmt.Errorf("whycache-torture: opening the log with %v: %w, want ErrCorrupt", d, err)
		}
		r.seen("new machine's open corrupt", 1)
		return 0, false, nil, nil // refused at once: nothing applied
	}
	defer closeStore()
	state := filepath.Join(r.work, fmt.Sprintf("probe%d.state", r.seq()))
	defer os.Remove(state)
	inst, err := whycache.Open(store, whycache.Options{StatePath: state})
	if err != nil {
		return 0, false, nil, err
	}
	defer inst.Close()
	err = inst.Update(r.ctx)
	if !errors.Is(err, whycache.ErrCorrupt) {
		return 0, false, nil, fmt.Errorf("whycache-torture: a new machine's Update of the log with %v: %v, want ErrCorrupt", d, err)
	}
	r.seen("new machine's Update corrupt", 1)
	at, valid = inst.UpdateID(), inst.Valid()
	if d.id != 0 && at >= d.id {
		return 0, false, nil, fmt.Errorf("%w: a new machine's Update applied records up to %d past %v", errLost, at, d)
	}
	return at, valid, contents(inst), nil
}

// checkNamesDamage runs the log's Check, which must fail with ErrCorrupt
// naming the damaged segment file or row.
func (r *faultRun) checkNamesDamage(d *logDamage) error {
	checker, ok := r.machines[0].store.(logstore.Checker)
	if !ok {
		return nil
	}
	err := checker.Check(r.ctx)
	name := filepath.Base(d.path)
	if d.path == "" {
		name = fmt.Sprintf("row %d", d.id)
	}
	if !errors.Is(err, logstore.ErrCorrupt) || !strings.Contains(err.Error(), name) {
		fresh := "cannot open"
		if store, closeStore, ferr := r.log.openExisting(); ferr == nil {
			fresh = fmt.Sprint(store.(logstore.Checker).Check(r.ctx))
			closeStore()
		} else {
			fresh = ferr.Error()
		}
		return fmt.Errorf("whycache-torture: log Check with %v: %v, want ErrCorrupt naming %s (Check on a new handle: %s)", d, err, name, fresh)
	}
	r.seen("Check corrupt", 1)
	return nil
}

// faultLostManifest renames the file store's MANIFEST away with the
// writers paused: opening the log must fail with ErrCorrupt, the
// machines' Updates fail with ErrCorrupt or apply nothing, the writers run
// for a while without getting a write acknowledged, and every file stays
// byte for byte as it was. Then the MANIFEST is put back.
func faultLostManifest(r *faultRun) (string, error) {
	ctx := r.ctx
	if _, err := r.pauseAll(true); err != nil {
		return "", err
	}
	before, err := fileDigests(r.log.dir)
	if err != nil {
		return "", err
	}
	manifest := filepath.Join(r.log.dir, fsManifest)
	away := filepath.Join(r.work, fsManifest+".away")
	if err := os.Rename(manifest, away); err != nil {
		return "", fmt.Errorf("whycache-torture: %w", err)
	}
	back := false
	defer func() {
		if !back {
			os.Rename(away, manifest)
		}
	}()
	for _, noCreate := range []bool{false, true} {
		s, err := whycache.NewFileStoreOptions(r.log.dir, whycache.FileStoreOptions{SegmentSize: r.log.segment, NoCreate: noCreate})
		if err == nil {
			s.Close()
			return "", fmt.Errorf("%w: the log opened without its MANIFEST (NoCreate %v)", errLost, noCreate)
		}
		if !errors.Is(err, logstore.ErrCorrupt) {
			return "", fmt.Errorf("whycache-torture: opening the log without its MANIFEST (NoCreate %v): %w, want ErrCorrupt", noCreate, err)
		}
		r.seen("open corrupt", 1)
	}
	for _, m := range r.machines {
		was := m.inst.UpdateID()
		err := m.inst.Update(ctx)
		if err != nil && errKind(err) != "corrupt" {
			return "", fmt.Errorf("whycache-torture: %s: Update without the MANIFEST: %w, want ErrCorrupt", m.name, err)
		}
		if err != nil {
			r.seen("Update corrupt", 1)
		}
		if now := m.inst.UpdateID(); now != was {
			return "", fmt.Errorf("%w: %s moved from record %d to %d without the MANIFEST", errLost, m.name, was, now)
		}
	}
	if err := r.resumeAll(); err != nil {
		return "", err
	}
	if !sleep(ctx, r.t.randomDuration(100*time.Millisecond, 200*time.Millisecond)) {
		return "", ctx.Err()
	}
	acks, err := r.pauseAll(true)
	if err != nil {
		return "", err
	}
	if len(acks) > 0 {
		return "", fmt.Errorf("%w: %d writes were acknowledged without the MANIFEST (first: %q at record %d)", errLost, len(acks), acks[0].Key, acks[0].ID)
	}
	after, err := fileDigests(r.log.dir)
	if err != nil {
		return "", err
	}
	moved, err := os.ReadFile(away)
	if err != nil {
		return "", fmt.Errorf("whycache-torture: %w", err)
	}
	after[fsManifest] = sha256.Sum256(moved)
	if diff := sameFiles(before, after); diff != "" {
		return "", fmt.Errorf("%w: files changed while the MANIFEST was missing: %s", errLost, diff)
	}
	back = true
	if err := os.Rename(away, manifest); err != nil {
		return "", fmt.Errorf("whycache-torture: %w", err)
	}
	return "", r.converge()
}

// faultStoppedWriter stops (SIGSTOP) a writer of a machine at random
// instants, faultStopTries times: reads with a short ReadTimeout either
// succeed (the writer was not in a state batch) or fail with
// ErrWriterStuck naming it; then a holder process that holds a batch is
// stopped: reads must fail with ErrWriterStuck naming it within the
// bound. Every stopped process is continued and everything converges.
func faultStoppedWriter(r *faultRun) (string, error) {
	m := r.machines[r.t.rng.IntN(len(r.machines))]
	reader, err := whycache.Open(m.store, whycache.Options{StatePath: m.state, ReadTimeout: faultReadTimeout})
	if err != nil {
		return m.name, err
	}
	defer reader.Close()
	var mine []*faultWriter
	for _, w := range r.writers {
		if w.m == m {
			mine = append(mine, w)
		}
	}
	for range faultStopTries {
		w := mine[r.t.rng.IntN(len(mine))]
		if !sleep(r.ctx, r.t.randomDuration(time.Millisecond, 50*time.Millisecond)) {
			return m.name, r.ctx.Err()
		}
		pid := w.c.Pid()
		if err := stopProcess(pid); err != nil {
			return m.name, err
		}
		stuck, err := r.readFacingStopped(reader, pid, false)
		syscall.Kill(pid, syscall.SIGCONT)
		if err != nil {
			return m.name, fmt.Errorf("%v stopped: %w", w, err)
		}
		r.stops++
		if stuck {
			r.stopsInBatch++
		}
	}

	args := []string{"--role", roleHolder, "--state", m.state}
	h, err := proc.Start(r.ctx, "holder on "+m.name, r.t.exe, args, []string{childEnv + "=1"})
	if err != nil {
		return m.name, err
	}
	defer h.Kill()
	h.Timeout = time.Minute
	var rep faultReport
	if err := h.Recv(&rep); err != nil || rep.Event != "holding" {
		return m.name, fmt.Errorf("whycache-torture: holder: %q, %v", rep.Event, err)
	}
	pid := h.Pid()
	if err := stopProcess(pid); err != nil {
		return m.name, err
	}
	_, err = r.readFacingStopped(reader, pid, true)
	syscall.Kill(pid, syscall.SIGCONT)
	if err != nil {
		return m.name, fmt.Errorf("a holder (pid %d) stopped in its batch: %w", pid, err)
	}
	h.Send(faultCmd{Cmd: "release"})
	if err := h.Recv(&rep); err != nil || rep.Event != "released" {
		return m.name, fmt.Errorf("whycache-torture: holder: %q, %v", rep.Event, err)
	}
	if err := h.Finish(); err != nil {
		return m.name, err
	}
	return m.name, r.converge()
}

// readFacingStopped reads through inst (Get, Stats, Scan) while process
// pid is stopped. Each read must succeed or fail with ErrWriterStuck
// naming pid within faultReadTimeout + faultStuckSlack; with mustStick
// (pid holds a batch), each must fail so. It reports whether they failed.
func (r *faultRun) readFacingStopped(inst *whycache.Instance, pid int, mustStick bool) (bool, error) {
	reads := []struct {
		name string
		do   func() error
	}{
		{"Get", func() error {
			_, err := inst.Get([]byte("k00000"))
			if errors.Is(err, whycache.ErrNotFound) {
				return nil
			}
			return err
		}},
		{"Stats", func() error { _, err := inst.Stats(nil); return err }},
		{"Scan", func() error { return inst.Scan(nil, nil, func(k, v []byte) bool { return true }) }},
	}
	stuck := 0
	for _, rd := range reads {
		start := time.Now()
		err := rd.do()
		took := time.Since(start)
		switch {
		case err == nil && mustStick:
			return false, fmt.Errorf("%w: %s succeeded facing a writer stopped inside its batch", errLost, rd.name)
		case err == nil:
			continue
		case !errors.Is(err, whycache.ErrWriterStuck):
			return false, fmt.Errorf("whycache-torture: %s facing a stopped writer: %w, want ErrWriterStuck", rd.name, err)
		case !strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)):
			return false, fmt.Errorf("whycache-torture: %s facing stopped pid %d: %q does not name it", rd.name, pid, err)
		case took > faultReadTimeout+faultStuckSlack:
			return false, fmt.Errorf("whycache-torture: %s facing a stopped writer took %v with ReadTimeout %v", rd.name, took, faultReadTimeout)
		}
		stuck++
		r.seen(rd.name+" writer-stuck", 1)
	}
	return stuck > 0, nil
}

// stopProcess sends SIGSTOP to pid and waits until the kernel reports it
// stopped.
func stopProcess(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("whycache-torture: stop pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if processState(pid) == "T" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("whycache-torture: pid %d did not stop (state %q)", pid, processState(pid))
		}
		time.Sleep(time.Millisecond) // the kernel offers no wait for another process's stop
	}
}

// processState returns the state letter of process pid from /proc.
func processState(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// faultRemovedState removes a machine's state file while its writers and
// an Update loop run: the loop's next poll must put it back, filled, with
// no key at an older record than before; then everything converges (a
// new reader sees what the machine's processes see).
func faultRemovedState(r *faultRun) (string, error) {
	m := r.machines[r.t.rng.IntN(len(r.machines))]
	loop := startUpdateLoop(r, m.inst)
	defer loop.stop()
	before, err := r.keyIDs(m.state)
	if err != nil {
		return m.name, err
	}
	if err := os.Remove(m.state); err != nil {
		return m.name, fmt.Errorf("whycache-torture: %w", err)
	}
	if err := loop.next(); err != nil {
		return m.name, fmt.Errorf("whycache-torture: the first Update after the state file was removed: %w", err)
	}
	if _, err := os.Stat(m.state); err != nil {
		return m.name, fmt.Errorf("%w: the state file was not put back by the next Update: %v", errLost, err)
	}
	reader, err := whycache.Open(m.store, whycache.Options{StatePath: m.state})
	if err != nil {
		return m.name, err
	}
	valid := reader.Valid()
	reader.Close()
	if !valid {
		return m.name, fmt.Errorf("%w: the state file was put back empty", errLost)
	}
	after, err := r.keyIDs(m.state)
	if err != nil {
		return m.name, err
	}
	if err := r.noKeyMovedBack("state file removed and put back", before, after); err != nil {
		return m.name, err
	}
	if err := loop.stop(); err != nil {
		return m.name, fmt.Errorf("whycache-torture: Update loop: %w", err)
	}
	return m.name, r.converge()
}

// updateLoop calls Update on an instance every 20 ms, as a follower
// daemon would, until stopped.
type updateLoop struct {
	done chan struct{}
	// wait receives channels that get the error of the first Update that
	// starts after they were sent.
	wait chan chan error
	once sync.Once
	mu   sync.Mutex // guards err
	err  error      // the first failed Update
	exit chan struct{}
}

func startUpdateLoop(r *faultRun, inst *whycache.Instance) *updateLoop {
	l := &updateLoop{done: make(chan struct{}), wait: make(chan chan error), exit: make(chan struct{})}
	go func() {
		defer close(l.exit)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var waiting []chan error
		for {
			select {
			case <-l.done:
				return
			case c := <-l.wait:
				waiting = append(waiting, c)
				continue
			case <-tick.C:
			}
			err := inst.Update(r.ctx)
			if err != nil {
				l.mu.Lock()
				if l.err == nil {
					l.err = err
				}
				l.mu.Unlock()
			}
			for _, c := range waiting {
				c <- err
			}
			waiting = nil
		}
	}()
	return l
}

// next waits for the next Update of the loop and returns its error.
func (l *updateLoop) next() error {
	c := make(chan error, 1)
	select {
	case l.wait <- c:
	case <-l.exit:
		return fmt.Errorf("whycache-torture: Update loop stopped")
	}
	select {
	case err := <-c:
		return err
	case <-l.exit:
		return fmt.Errorf("whycache-torture: Update loop stopped")
	}
}

// stop ends the loop and returns the first error an Update returned.
func (l *updateLoop) stop() error {
	l.once.Do(func() { close(l.done) })
	<-l.exit
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// faultOldSnapshot writes a snapshot of a machine while the writers run,
// lets them write more, and loads it into a machine (the same or the
// other): no key that machine had may move back to an older record. The
// load may only fail with ErrSnapshotBehind.
func faultOldSnapshot(r *faultRun) (string, error) {
	rng := r.t.rng
	src := r.machines[rng.IntN(len(r.machines))]
	dst := r.machines[rng.IntN(len(r.machines))]
	gzip := rng.IntN(2) == 0
	variant := fmt.Sprintf("%s into %s (gzip %v)", src.name, dst.name, gzip)
	var snap bytes.Buffer
	if _, err := src.inst.WriteSnapshotOptions(r.ctx, &snap, whycache.SnapshotOptions{Gzip: gzip}); err != nil {
		return variant, fmt.Errorf("whycache-torture: WriteSnapshot: %w", err)
	}
	if !sleep(r.ctx, r.t.randomDuration(100*time.Millisecond, 300*time.Millisecond)) {
		return variant, r.ctx.Err()
	}
	before, err := r.keyIDs(dst.state)
	if err != nil {
		return variant, err
	}
	err = dst.inst.LoadSnapshot(r.ctx, bytes.NewReader(snap.Bytes()))
	if err != nil {
		if !errors.Is(err, whycache.ErrSnapshotBehind) {
			return variant, fmt.Errorf("whycache-torture: LoadSnapshot of an older snapshot: %w", err)
		}
		r.seen("LoadSnapshot snapshot-behind", 1)
	}
	after, err := r.keyIDs(dst.state)
	if err != nil {
		return variant, err
	}
	if err := r.noKeyMovedBack("older snapshot loaded", before, after); err != nil {
		return variant, err
	}
	return variant, r.converge()
}
