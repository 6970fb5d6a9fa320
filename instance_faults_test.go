package whycache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/memstore"
	"github.com/whycache/whycache/prefixtree"
)

// backupLog copies the log s keeps, as an operator's backup would, and
// returns the function that restores the copy over the log (identity, ids
// and records), with every handle on it left open.
func backupLog(t *testing.T, s logstore.Store) (restore func(t *testing.T)) {
	t.Helper()
	switch s := s.(type) {
	case *memstore.Store:
		b := s.Backup()
		return func(*testing.T) { s.Restore(b) }
	case *FileStore:
		bak := filepath.Join(t.TempDir(), "backup")
		if out, err := exec.Command("cp", "-a", s.Dir(), bak).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v: %s", err, out)
		}
		return func(t *testing.T) {
			t.Helper()
			ents, err := os.ReadDir(s.Dir())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if err := os.RemoveAll(filepath.Join(s.Dir(), e.Name())); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := exec.Command("cp", "-a", bak+"/.", s.Dir()).CombinedOutput(); err != nil {
				t.Fatalf("cp -a: %v: %s", err, out)
			}
		}
	case *MySQLStore:
		// Another pool on the same database, as an operator's dump uses.
		return mysqltest.CopyAside(t, mysqltest.DB(t), s.Table())
	}
	t.Fatalf("no backup for %T", s)
	return nil
}

// machineContents returns the key/value pairs a state holds.
func machineContents(t *testing.T, c *Instance) string {
	t.Helper()
	if !c.Valid() {
		return "(invalid)"
	}
	return fmt.Sprint(contents(c))
}

// replayed returns what a fresh machine holds after one Update of store.
func replayed(t *testing.T, store logstore.Store) string {
	t.Helper()
	fresh := newInstance(t, store, Options{})
	mustUpdate(t, fresh)
	return machineContents(t, fresh)
}

// TestInstanceLogRestoredFromBackup restores the log from a backup taken
// before the machine applied more records (some through its own Set), then
// commits 0, 1, a few and many new records from another machine, reusing
// the lost ids. The machine's next Update must notice and rebuild to
// exactly the log as it now is; with RebuildNever it must fail and keep
// its state.
func TestInstanceLogRestoredFromBackup(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		for _, newRecords := range []int{0, 1, 3, 40} {
			t.Run(fmt.Sprintf("%d new records", newRecords), func(t *testing.T) {
				ctx := context.Background()
				store := ts.newLog(t)
				a := newInstance(t, store, Options{})
				other := newInstance(t, store, Options{})
				mustUpdate(t, a)
				for i := 0; i < 5; i++ {
					mustSet(t, a, fmt.Sprintf("kept%d", i), "v")
				}
				restore := backupLog(t, store)
				for i := 0; i < 3; i++ {
					mustSet(t, other, fmt.Sprintf("lost-other%d", i), "v")
				}
				mustUpdate(t, a)
				mustSet(t, a, "lost-own", "v") // applied locally
				mustSet(t, a, "kept0", "overwritten, then lost")
				before := machineContents(t, a)
				restore(t)
				for i := 0; i < newRecords; i++ {
					mustSet(t, other, fmt.Sprintf("new%d", i), fmt.Sprint(i))
				}
				strict := newInstance(t, store, Options{StatePath: a.StatePath(), Rebuild: RebuildNever})
				err := strict.Update(ctx)
				if !errors.Is(err, ErrRebuildNeeded) || !errors.Is(err, ErrLogDiverged) {
					t.Fatalf("Update with RebuildNever after the restore: %v, want ErrRebuildNeeded and ErrLogDiverged", err)
				}
				if got := machineContents(t, a); got != before {
					t.Fatalf("refused Update changed the state")
				}
				st, err := a.UpdateStats(ctx)
				if err != nil {
					t.Fatalf("Update after the restore: %v", err)
				}
				if !errors.Is(st.Rebuilt, ErrLogDiverged) {
					t.Fatalf("Update after the restore: rebuilt %v, want ErrLogDiverged", st.Rebuilt)
				}
				if got, want := machineContents(t, a), replayed(t, store); got != want {
					t.Fatalf("after the rebuild the machine holds\n%s\nthe log replayed holds\n%s", got, want)
				}
				latest, _ := store.LatestUpdateID(ctx)
				if a.UpdateID() != latest {
					t.Fatalf("UpdateID %d after the rebuild, log latest %d", a.UpdateID(), latest)
				}
				wantErr(t, a, "lost-own", ErrNotFound)
				wantValue(t, a, "kept0", []byte("v"))
			})
		}
	})
}

// TestInstanceOtherLogRefused points a filled state at a log of another
// identity (a typo in the store's address, a new table): Update refuses
// and leaves the state as it is, Set refuses before committing, and only
// RebuildAnyLog adopts the other log.
func TestInstanceOtherLogRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		a := newInstance(t, ts.newLog(t), Options{})
		mustUpdate(t, a)
		mustSet(t, a, "mine", "1")
		otherLog := ts.newLog(t)
		wrong := newInstance(t, otherLog, Options{StatePath: a.StatePath()})
		if err := wrong.Update(ctx); !errors.Is(err, ErrLogMismatch) || !errors.Is(err, ErrRebuildNeeded) {
			t.Fatalf("Update through another log: %v, want ErrLogMismatch", err)
		}
		wantValue(t, a, "mine", []byte("1"))
		if _, err := wrong.Set(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrLogMismatch) {
			t.Fatalf("Set through another log: %v, want ErrLogMismatch", err)
		}
		if latest, err := otherLog.LatestUpdateID(ctx); err != nil || latest != 0 {
			t.Fatalf("the other log after the refused Set: latest %d, %v; want nothing committed", latest, err)
		}
		adopt := newInstance(t, otherLog, Options{StatePath: a.StatePath(), Rebuild: RebuildAnyLog})
		st, err := adopt.UpdateStats(ctx)
		if err != nil || !errors.Is(st.Rebuilt, ErrLogMismatch) {
			t.Fatalf("Update with RebuildAnyLog: %+v, %v", st, err)
		}
		wantErr(t, a, "mine", ErrNotFound)
		if !a.Valid() {
			t.Fatal("state not valid after adopting the other log")
		}
	})
}

// TestInstanceSnapshotNeverMovesKeysBack loads a snapshot older than the
// live state: it is caught up first; when it cannot be (the log was
// compacted past it), it is refused unless forced.
func TestInstanceSnapshotNeverMovesKeysBack(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		a := newInstance(t, store, Options{})
		mustUpdate(t, a)
		mustSet(t, a, "k", "old")
		mustSet(t, a, "gone", "x")
		var snap bytes.Buffer
		if _, err := a.WriteSnapshot(&snap); err != nil {
			t.Fatal(err)
		}
		mustSet(t, a, "k", "new")
		if err := a.LoadSnapshot(ctx, bytes.NewReader(snap.Bytes())); err != nil {
			t.Fatalf("loading an older snapshot over a live state: %v", err)
		}
		wantValue(t, a, "k", []byte("new"))
		// Compact the log past the snapshot: a dropped delete marker
		// raises the horizon above the snapshot's id.
		if _, err := a.Delete(ctx, []byte("gone")); err != nil {
			t.Fatal(err)
		}
		mustSet(t, a, "k", "newest")
		if err := a.RewriteHistory(ctx, 0, RewriteOptions{}); err != nil {
			t.Fatal(err)
		}
		err := a.LoadSnapshot(ctx, bytes.NewReader(snap.Bytes()))
		if !errors.Is(err, ErrSnapshotBehind) {
			t.Fatalf("loading a snapshot behind the horizon over a newer state: %v, want ErrSnapshotBehind", err)
		}
		wantValue(t, a, "k", []byte("newest"))
		if err := a.LoadSnapshotOptions(ctx, bytes.NewReader(snap.Bytes()), SnapshotLoadOptions{Force: true}); err != nil {
			t.Fatalf("forced load: %v", err)
		}
		wantValue(t, a, "k", []byte("old"))
		mustUpdate(t, a) // behind the horizon: rebuilt
		wantValue(t, a, "k", []byte("newest"))
		wantErr(t, a, "gone", ErrNotFound)
	})
}

// TestInstanceStateFileRemoved removes the state file under two processes'
// instances (as an operator's rm or systemd's RemoveIPC would): the next
// Update puts it back, filled, and both move to it; a new process finds
// it.
func TestInstanceStateFileRemoved(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		store := ts.newLog(t)
		a := newInstance(t, store, Options{})
		b := newInstance(t, store, Options{StatePath: a.StatePath()})
		mustUpdate(t, a)
		mustSet(t, a, "k", "1")
		wantValue(t, b, "k", []byte("1"))
		if err := os.Remove(a.StatePath()); err != nil {
			t.Fatal(err)
		}
		mustSet(t, a, "k2", "2") // a writer notices too
		if _, err := os.Stat(a.StatePath()); err != nil {
			t.Fatalf("state file not put back by Set: %v", err)
		}
		os.Remove(a.StatePath())
		mustUpdate(t, a)
		if _, err := os.Stat(a.StatePath()); err != nil {
			t.Fatalf("state file not put back by Update: %v", err)
		}
		fresh := newInstance(t, store, Options{StatePath: a.StatePath()})
		for _, c := range []*Instance{a, b, fresh} {
			wantValue(t, c, "k", []byte("1"))
			wantValue(t, c, "k2", []byte("2"))
		}
		mustSet(t, b, "k3", "3")
		wantValue(t, fresh, "k3", []byte("3"))
	})
}

// TestInstanceHostileSnapshotHeader loads a 60-byte snapshot that claims
// 2^64-1 keys: it is rejected as corrupt without sizing anything for the
// claim.
func TestInstanceHostileSnapshotHeader(t *testing.T) {
	ctx := context.Background()
	store, _ := memstore.New(memstore.Options{})
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	in, _ := store.Info(ctx)
	var hdr []byte
	hdr = append(hdr, snapshotMagic...)
	hdr = append(hdr, snapshotVersion)
	hdr = append(hdr, in.ID[:]...)
	hdr = binary.LittleEndian.AppendUint64(hdr, 1)
	hdr = binary.LittleEndian.AppendUint64(hdr, 0)
	hdr = binary.LittleEndian.AppendUint64(hdr, ^uint64(0))
	hdr = append(hdr, make([]byte, 60-len(hdr))...)
	// Watch the state directory while the snapshot loads: the largest file
	// seen is what the load reserved on disk.
	done := make(chan struct{})
	largest := make(chan int64)
	go func() {
		var peak int64
		for {
			ents, _ := os.ReadDir(filepath.Dir(c.StatePath()))
			for _, e := range ents {
				if info, err := e.Info(); err == nil {
					peak = max(peak, info.Size())
				}
			}
			select {
			case <-done:
				largest <- peak
				return
			default:
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := c.LoadSnapshot(ctx, bytes.NewReader(hdr))
	runtime.ReadMemStats(&after)
	close(done)
	peak := <-largest
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("hostile snapshot: %v, want ErrCorrupt", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("loading a 60-byte snapshot allocated %d MB", grew>>20)
	}
	if peak > 16<<20 {
		t.Fatalf("loading a 60-byte snapshot made a %d MB state file", peak>>20)
	}
}

// TestInstanceReadOnly opens a filled state read-only: reads work, and
// every write fails with ErrReadOnly before anything reaches the log.
func TestInstanceReadOnly(t *testing.T) {
	ctx := context.Background()
	store, _ := memstore.New(memstore.Options{})
	w := newInstance(t, store, Options{})
	mustUpdate(t, w)
	mustSet(t, w, "k", "v")
	r := newInstance(t, store, Options{StatePath: w.StatePath(), ReadOnly: true})
	wantValue(t, r, "k", []byte("v"))
	before, _ := store.LatestUpdateID(ctx)
	if _, err := r.Set(ctx, []byte("k"), []byte("other")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Set on a read-only state: %v, want ErrReadOnly", err)
	}
	if after, _ := store.LatestUpdateID(ctx); after != before {
		t.Fatalf("the refused Set committed: latest %d, was %d", after, before)
	}
	mustSet(t, w, "k2", "v2")
	if err := r.Update(ctx); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Update on a read-only state: %v, want ErrReadOnly", err)
	}
	wantValue(t, r, "k2", []byte("v2")) // the writer's change shows at once
	if err := r.LoadSnapshot(ctx, bytes.NewReader(nil)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("LoadSnapshot on a read-only state: %v, want ErrReadOnly", err)
	}
}

// TestInstanceSetAfterRestore restores the log from a backup while a
// machine's state holds records the restore removed; another machine
// reuses their ids; then the first machine writes before it updates. Its
// commit directly follows the log's latest id, but not the history its
// state holds: the write must not hide the divergence.
func TestInstanceSetAfterRestore(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store, a, b := twoMachines(t, ts)
		for i := 0; i < 5; i++ {
			mustSet(t, a, fmt.Sprintf("kept%d", i), "v")
		}
		restore := backupLog(t, store)
		mustSet(t, a, "lost1", "v")
		mustSet(t, a, "lost2", "v")
		restore(t)
		mustSet(t, b, "new1", "v")
		mustSet(t, b, "new2", "v")
		mustSet(t, a, "mine", "v")
		if _, err := a.UpdateStats(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := machineContents(t, a), replayed(t, store); got != want {
			t.Fatalf("after a write that followed the restored log, the machine holds\n%s\nthe log replayed holds\n%s", got, want)
		}
	})
}

// TestInstanceRemoteCommitSeenWhole: a SetMulti split over 3,000 records
// (one commit) reaches another machine in polls of 1,024 records; a
// reader there must never see some of its keys without the others.
func TestInstanceRemoteCommitSeenWhole(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		a, b := splittingWriterAndReader(t, ts)
		const n = 3000
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{Key: []byte(fmt.Sprintf("tx-%04d", i)), Value: []byte("v")}
		}
		if _, err := a.SetMulti(ctx, items); err != nil {
			t.Fatal(err)
		}
		updateWatchingForPart(t, b, "tx-0000", fmt.Sprintf("tx-%04d", n-1))
		for _, k := range []string{"tx-0000", "tx-1500", fmt.Sprintf("tx-%04d", n-1)} {
			wantValue(t, b, k, []byte("v"))
		}
	})
}

// updateWatchingForPart runs Update on b while a reader of b's state checks
// that it never holds the key first of a commit without its key last: the
// commit must appear whole.
func updateWatchingForPart(t *testing.T, b *Instance, first, last string) {
	t.Helper()
	stop, partial := make(chan struct{}), make(chan string, 1)
	go func() {
		defer close(partial)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, e1 := b.Get([]byte(first))
			_, e2 := b.Get([]byte(last))
			_, e3 := b.Get([]byte(first))
			if e1 == nil && e3 == nil && e2 != nil {
				partial <- "the first key without the last"
				return
			}
		}
	}()
	mustUpdate(t, b)
	close(stop)
	if msg, ok := <-partial; ok {
		t.Fatalf("a reader saw part of the commit: %s", msg)
	}
}

// splittingWriterAndReader returns two filled machines on one new log of
// ts: a, whose writes are split into many records (MaxUpdateSize 64), and
// b, which reads them.
func splittingWriterAndReader(t *testing.T, ts testStore) (a, b *Instance) {
	t.Helper()
	store := ts.newLog(t)
	a = newInstance(t, store, Options{MaxUpdateSize: 64})
	b = newInstance(t, store, Options{})
	mustUpdate(t, a)
	mustUpdate(t, b)
	return a, b
}

// TestRebuildRecordedInState: a machine whose Set found the log restored
// from a backup rebuilds its state silently (the commit succeeded); the
// rebuild is recorded in the state, so every process that uses it sees it
// in Stats, it is carried through a snapshot load, and a second rebuild
// counts two.
func TestRebuildRecordedInState(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store, a, b := twoMachines(t, ts)
		mustSet(t, a, "kept", "v")
		if st, err := a.Stats(nil); err != nil || st.Rebuilds != 0 || !st.LastRebuild.IsZero() || st.LastRebuildCause != "" {
			t.Fatalf("before any rebuild: %+v, %v", st, err)
		}
		restore := backupLog(t, store)
		mustSet(t, a, "lost1", "v")
		restore(t)
		mustSet(t, b, "new1", "v")
		before := time.Now()
		mustSet(t, a, "mine", "v") // the slow path: the state is rebuilt
		other := newInstance(t, store, Options{StatePath: a.StatePath()})
		for name, inst := range map[string]*Instance{"the writer": a, "another process's instance": other} {
			st, err := inst.Stats(nil)
			if err != nil {
				t.Fatal(err)
			}
			if st.Rebuilds != 1 || st.LastRebuild.Before(before) || st.LastRebuild.After(time.Now()) || st.LastRebuildCause != "log diverged" {
				t.Errorf("%s after a Set rebuilt the state: Rebuilds %d, LastRebuild %v (Set from %v), cause %q; want 1, during the Set, \"log diverged\"",
					name, st.Rebuilds, st.LastRebuild, before, st.LastRebuildCause)
			}
		}
		// A snapshot load keeps the record.
		var snap bytes.Buffer
		if _, err := a.WriteSnapshot(&snap); err != nil {
			t.Fatal(err)
		}
		if err := a.LoadSnapshot(ctx, bytes.NewReader(snap.Bytes())); err != nil {
			t.Fatal(err)
		}
		if st, _ := a.Stats(nil); st.Rebuilds != 1 || st.LastRebuildCause != "log diverged" {
			t.Errorf("after a snapshot load: Rebuilds %d, cause %q; want 1, \"log diverged\"", st.Rebuilds, st.LastRebuildCause)
		}
		// Another restore, found by an Update this time.
		restore = backupLog(t, store)
		mustSet(t, a, "lost2", "v")
		restore(t)
		mustSet(t, b, "new2", "v")
		up, err := a.UpdateStats(ctx)
		if err != nil || up.Rebuilt == nil {
			t.Fatalf("Update after the second restore: %+v, %v; want a rebuild", up, err)
		}
		if st, _ := other.Stats(nil); st.Rebuilds != 2 {
			t.Errorf("after the second rebuild: Rebuilds %d, want 2", st.Rebuilds)
		}
		if err := a.Check(); err != nil {
			t.Fatal(err)
		}
		// Check verifies the record: a count without a time is damage.
		err = a.withTree(func(tr *prefixtree.Tree) error {
			b, err := tr.Begin()
			if err != nil {
				return err
			}
			if err := b.SetMeta(metaRebuiltAt, 0); err != nil {
				return err
			}
			return b.Commit()
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Check(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Check of a state with %d rebuilds and no time: %v, want ErrCorrupt", 2, err)
		}
	})
}

// twoMachines returns a new log of ts and two machines on it, both
// filled (updated once).
func twoMachines(t *testing.T, ts testStore) (store logstore.Store, a, b *Instance) {
	t.Helper()
	store = ts.newLog(t)
	a = newInstance(t, store, Options{})
	b = newInstance(t, store, Options{})
	mustUpdate(t, a)
	mustUpdate(t, b)
	return store, a, b
}
