package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/whycache/whycache"
)

// The demo's workload sizes: small enough for a few seconds on a slow
// disk, large enough to show the effects.
const (
	demoWriters      = 16  // goroutines writing at once
	demoSetsEach     = 100 // Sets per goroutine in step 2
	demoChurnKeys    = 320 // keys overwritten in step 5
	demoChurnRounds  = 3   // overwrites per key in step 5
	demoDeletes      = 80  // keys deleted in step 5
	demoAfterSnapSet = 100 // keys written after the snapshot in step 4
)

// shareState is step 1: reader processes see a write of another process
// at once, without Update.
func (d *demo) shareState() error {
	d.step(1, "One machine, several processes sharing one state file")
	ctx := d.e.ctx
	a := d.a
	start := time.Now()
	if err := a.Update(ctx); err != nil {
		return err
	}
	d.e.printf("   machine A: state file %s filled from the empty log in %s\n", filepath.Base(a.StatePath()), fmtDur(time.Since(start)))

	const key, value = "greeting", "hello from another process"
	var readers []*demoChild
	defer func() {
		for _, c := range readers {
			c.kill()
		}
	}()
	var pids []string
	for range d.readers {
		c, err := d.spawn("a", "wait", key, value)
		if err != nil {
			return err
		}
		readers = append(readers, c)
		if _, err := c.expect("ready"); err != nil {
			return err
		}
		pids = append(pids, fmt.Sprint(c.pid()))
	}
	d.e.printf("   started %d reader processes on it (pids %s); each calls Get(%q) in a loop and never Update\n", len(readers), strings.Join(pids, ", "), key)

	w, err := d.spawn("a", "set", key, value)
	if err != nil {
		return err
	}
	f, err := w.expect("set")
	if err != nil {
		return err
	}
	if err := w.wait(); err != nil {
		return err
	}
	var id uint64
	var setStart, setEnd int64
	if _, err := fmt.Sscan(strings.Join(f, " "), &id, &setStart, &setEnd); err != nil {
		return wrap(err, "writer process said %q", f)
	}
	d.e.printf("   writer process (pid %d): Set(%q, %q) committed as log record %d and applied to the shared state in %s\n",
		w.pid(), key, value, id, fmtDur(time.Duration(setEnd-setStart)))
	for _, c := range readers {
		f, err := c.expect("seen")
		if err != nil {
			return err
		}
		var seen, gets int64
		if _, err := fmt.Sscan(strings.Join(f, " "), &seen, &gets); err != nil {
			return wrap(err, "reader process said %q", f)
		}
		if err := c.wait(); err != nil {
			return err
		}
		d.e.printf("   reader process (pid %d) saw the new value %s after the writer's Set began (%d Gets, no Update)\n",
			c.pid(), fmtDur(time.Duration(seen-setStart)), gets)
	}
	readers = nil
	return nil
}

// concurrentSets writes key(i, j)=value(i, j) for j < each from
// demoWriters goroutines at once.
func concurrentSets(d *demo, c *whycache.Instance, each int, key, value func(i, j int) string) error {
	var wg sync.WaitGroup
	errs := make([]error, demoWriters)
	for i := range demoWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if _, err := c.Set(d.e.ctx, []byte(key(i, j)), []byte(value(i, j))); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// groupCommit is step 2: concurrent Sets share log transactions.
func (d *demo) groupCommit() error {
	d.step(2, "Concurrent writes are group-committed to the log")
	a := d.a
	before, err := d.store.LatestUpdateID(d.e.ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	err = concurrentSets(d, a, demoSetsEach,
		func(i, j int) string { return fmt.Sprintf("user:%02d:%03d", i, j) },
		func(i, j int) string { return fmt.Sprintf("profile of user %d/%d", i, j) })
	if err != nil {
		return err
	}
	took := time.Since(start)
	after, err := d.store.LatestUpdateID(d.e.ctx)
	if err != nil {
		return err
	}
	n := demoWriters * demoSetsEach
	d.e.printf("   %d goroutines x %d Sets: %d records (ids %d-%d) in %s, %.0f Sets/s\n", demoWriters, demoSetsEach, after-before, before+1, after, fmtDur(took), float64(n)/took.Seconds())
	d.e.printf("   every Set returned after its record was durable (fsync); concurrent Sets shared the fsyncs\n")
	return nil
}

// catchUp is step 3: another machine applies the log with Update.
func (d *demo) catchUp() error {
	d.step(3, "A second machine catches up with Update")
	a := d.a
	b, err := d.machine("b")
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.Update(d.e.ctx); err != nil {
		return err
	}
	took := time.Since(start)
	v, err := b.Get([]byte("greeting"))
	if err != nil {
		return err
	}
	same, n := sameContent(a, b)
	d.e.printf("   machine B (b.state, new): Update applied the log up to id %d in %s: %d keys; Get(\"greeting\") = %q\n", b.UpdateID(), fmtDur(took), n, v)
	d.e.printf("   same content as machine A: %s\n", yesNo(same))
	return nil
}

// snapshot is step 4: export a snapshot, bootstrap a third machine from
// it and tail the log from its update id.
func (d *demo) snapshot() error {
	d.step(4, "Snapshot export, and bootstrap of a third machine")
	ctx := d.e.ctx
	a := d.a
	if err := a.Update(ctx); err != nil {
		return err
	}
	path := filepath.Join(d.dir, "a.snapshot")
	start := time.Now()
	id, err := writeSnapshotFile(a, path)
	if err != nil {
		return err
	}
	took := time.Since(start)
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	d.e.printf("   machine A: snapshot at update id %d, %s, written in %s (readers and writers go on meanwhile)\n", id, formatBytes(fi.Size()), fmtDur(took))

	items := make([]whycache.Item, demoAfterSnapSet)
	for i := range items {
		items[i] = whycache.Item{Key: []byte(fmt.Sprintf("order:%04d", i)), Value: []byte("placed after the snapshot")}
	}
	if _, err := a.SetMulti(ctx, items); err != nil {
		return err
	}
	if _, err := a.Delete(ctx, []byte("user:00:000")); err != nil {
		return err
	}
	d.e.printf("   machine A: %d more keys set (one SetMulti) and one deleted after the snapshot\n", demoAfterSnapSet)

	c, err := d.machine("c")
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	start = time.Now()
	if err := c.LoadSnapshot(ctx, f); err != nil {
		return err
	}
	loaded := time.Since(start)
	loadedID := c.UpdateID()
	start = time.Now()
	if err := c.Update(ctx); err != nil {
		return err
	}
	tailed := time.Since(start)
	same, n := sameContent(a, c)
	d.e.printf("   machine C (new): LoadSnapshot in %s (update id %d), then Update tailed the log to id %d in %s: %d keys\n", fmtDur(loaded), loadedID, c.UpdateID(), fmtDur(tailed), n)
	d.e.printf("   same content as machine A: %s\n", yesNo(same))
	return nil
}

// writeSnapshotFile writes c's snapshot to path.
func writeSnapshotFile(c *whycache.Instance, path string) (uint64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(f)
	id, err := c.WriteSnapshot(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return id, err
}

// rewrite is step 5: churn, rewrite the history, rebuild from it.
func (d *demo) rewrite() error {
	d.step(5, "Rewrite the history")
	ctx := d.e.ctx
	a := d.a
	perWriter := demoChurnKeys / demoWriters
	for round := range demoChurnRounds {
		err := concurrentSets(d, a, perWriter,
			func(i, j int) string { return fmt.Sprintf("session:%03d", i*perWriter+j) },
			func(i, j int) string { return fmt.Sprintf("round %d", round) })
		if err != nil {
			return err
		}
	}
	dels := make([][]byte, demoDeletes)
	for i := range dels {
		dels[i] = []byte(fmt.Sprintf("session:%03d", i))
	}
	if _, err := a.DeleteMulti(ctx, dels); err != nil {
		return err
	}
	if err := a.Update(ctx); err != nil {
		return err
	}
	d.e.printf("   %d keys overwritten %d times from %d goroutines, then %d of them deleted\n", demoChurnKeys, demoChurnRounds, demoWriters, demoDeletes)
	start := time.Now()
	st, err := a.RewriteHistoryStats(ctx, 0, whycache.RewriteOptions{})
	if err != nil {
		return err
	}
	d.e.printf("   RewriteHistory: %d -> %d records, %s -> %s, %d live keys, in %s\n",
		st.RecordsBefore, st.RecordsAfter, formatBytes(int64(st.BytesBefore)), formatBytes(int64(st.BytesAfter)), st.LiveKeys, fmtDur(time.Since(start)))
	if st.Horizon > 0 {
		d.e.printf("   delete markers were dropped, so the compaction horizon rose to id %d\n", st.Horizon)
	}

	fresh, err := d.machine("d")
	if err != nil {
		return err
	}
	start = time.Now()
	if err := fresh.Update(ctx); err != nil {
		return err
	}
	same, n := sameContent(a, fresh)
	d.e.printf("   machine D (new): Update from the compacted log in %s: %d keys; same content as A: %s\n", fmtDur(time.Since(start)), n, yesNo(same))

	b, err := d.machine("b")
	if err != nil {
		return err
	}
	behind := b.UpdateID()
	start = time.Now()
	if err := b.Update(ctx); err != nil {
		return err
	}
	note := ""
	if st.Horizon > behind {
		note = " (it was behind the horizon, so it rebuilt its state from the log)"
	}
	same, _ = sameContent(a, b)
	d.e.printf("   machine B (at id %d): Update in %s%s; same content as A: %s\n", behind, fmtDur(time.Since(start)), note, yesNo(same))
	return nil
}
