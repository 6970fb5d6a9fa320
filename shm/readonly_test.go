package shm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openReadOnly opens path read-only with the given read bound.
func openReadOnly(t *testing.T, path string, timeout time.Duration) *File {
	t.Helper()
	f, err := Open(path, Options{Walk: listWalk, ReadOnly: true, ReadTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestReadOnlyChangesNothing: a read-only File reads, refuses every
// operation that takes the writer lock with ErrReadOnly, does not create a
// missing file, and leaves the file byte for byte as it was.
func TestReadOnlyChangesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	newListFile(t, path, 5)
	before, err := os.ReadFile(path)
	must(t, err)

	f := openReadOnly(t, path, 0)
	if !f.ReadOnly() {
		t.Fatal("ReadOnly() = false")
	}
	seq, err := f.ReadBegin()
	must(t, err)
	if got := listPayloads(f); len(got) != 5 || got[0] != 5 || !f.ReadValid(seq) {
		t.Fatalf("read-only list = %v", got)
	}
	for name, op := range map[string]func() error{
		"Begin":  func() error { _, err := f.Begin(); return err },
		"Check":  f.Check,
		"CopyTo": func() error { return f.CopyTo(filepath.Join(dir, "copy"), 0) },
	} {
		if err := op(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only file: %v, want ErrReadOnly", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "copy")); err == nil {
		t.Error("CopyTo of a read-only file created the copy")
	}
	if _, err := Open(filepath.Join(dir, "missing"), Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only Open of a missing file: %v, want os.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("read-only Open created a missing file")
	}
	must(t, f.Close())
	after, err := os.ReadFile(path)
	must(t, err)
	if !bytes.Equal(before, after) {
		t.Error("the read-only File changed the file")
	}
}

// TestReadOnlyWaitsForWriter: a read-only reader that meets a write
// section of a live writer (another File, in this process) returns as soon
// as it can after the commit, without a wake-up from the writer, and sees
// the commit.
func TestReadOnlyWaitsForWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	newListFile(t, path, 1)
	w := openTest(t, path)
	r := openReadOnly(t, path, time.Minute)
	tx, err := beginPush(w, 42)
	must(t, err)
	type result struct {
		seq uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		seq, err := r.ReadBegin()
		done <- result{seq, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("ReadBegin returned (%v) during the write section", res.err)
	case <-time.After(20 * time.Millisecond):
	}
	must(t, tx.Commit())
	res := <-done
	must(t, res.err)
	if got := listPayloads(r); len(got) != 2 || got[0] != 42 || !r.ReadValid(res.seq) {
		t.Fatalf("after the commit the read-only reader sees %v", got)
	}
}

// TestReadOnlyNeverRepairs: a read-only reader facing the write section of
// a SIGKILLed writer does not repair it (it cannot write): it reports the
// dead writer after its bound, naming it, and the file keeps the dead
// writer's marker; a writable reader then repairs, and the read-only one
// reads the repaired state.
func TestReadOnlyNeverRepairs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	newListFile(t, path, 3)
	w := startHelper(t, procArgs{Role: "hangwriter", Path: path, Payload: 99})
	w.expect(t, "writing")
	pid := w.pid()
	must(t, w.cmd.Process.Kill())
	w.cmd.Wait()

	r := openReadOnly(t, path, 200*time.Millisecond)
	_, err, _ := readBeginWatched(t, r)
	if !errors.Is(err, ErrWriterStuck) {
		t.Fatalf("read-only ReadBegin facing a dead writer: %v, want ErrWriterStuck", err)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", pid), "gone", "never repairs", "read-write"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if r.Stats().Recoveries != 0 || r.Uint64(offWriterPID) != uint64(pid) {
		t.Fatalf("the read-only reader changed the file: recoveries %d, writer pid %d", r.Stats().Recoveries, r.Uint64(offWriterPID))
	}

	rw := openTest(t, path)
	if _, err := rw.ReadBegin(); err != nil {
		t.Fatalf("a writable reader did not repair: %v", err)
	}
	seq, err, _ := readBeginWatched(t, r)
	must(t, err)
	if got := listPayloads(r); len(got) != 3 || !r.ReadValid(seq) || r.Stats().Recoveries != 1 {
		t.Fatalf("after the repair the read-only reader sees %v, recoveries %d", got, r.Stats().Recoveries)
	}
}

// TestReadOnlyReportsStoppedWriter: a read-only reader facing a stopped
// writer reports it like a writable one.
func TestReadOnlyReportsStoppedWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	newListFile(t, path, 3)
	r := openReadOnly(t, path, 200*time.Millisecond)
	w := startHelper(t, procArgs{Role: "stopwriter", Path: path, Payload: 99})
	w.expect(t, "writing")
	w.waitProcState(t, 'T')
	_, err, _ := readBeginWatched(t, r)
	if !errors.Is(err, ErrWriterStuck) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", w.pid())) || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("read-only ReadBegin facing a stopped writer: %v", err)
	}
	must(t, w.cmd.Process.Signal(syscall.SIGCONT))
	w.expect(t, "committed")
	seq, err, _ := readBeginWatched(t, r)
	must(t, err)
	if got := listPayloads(r); len(got) != 4 || got[0] != 99 || !r.ReadValid(seq) {
		t.Fatalf("after the commit the read-only reader sees %v", got)
	}
}
