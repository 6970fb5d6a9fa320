package prefixtree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func init() {
	helperRoles["stopper"] = runStopperRole
}

// runStopperRole begins a batch that puts "stopped/0".."stopped/9" (the
// map changes, so readers wait), says "writing", stops itself with
// SIGSTOP and, once continued, commits and says "committed".
func runStopperRole(tr *Tree, a helperArgs, stop <-chan struct{}) error {
	b, err := tr.Begin()
	if err != nil {
		return err
	}
	for i := 0; i < 10; i++ {
		if _, err := b.Put(fmt.Appendf(nil, "stopped/%d", i), []byte("v"), 100); err != nil {
			return err
		}
	}
	if err := b.SetMeta(0, 7); err != nil {
		return err
	}
	say("writing")
	if err := stopSelf(); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return err
	}
	say("committed")
	<-stop
	return nil
}

// stopSelf stops the process with SIGSTOP and returns once it was
// continued. kill(2) of the own process returns before every thread has
// entered the stop, so the caller could run on (and, say, commit) before it
// stops; waiting for the SIGCONT that continues it rules that out.
func stopSelf() error {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
		return err
	}
	<-cont
	return nil
}

// waitStopped waits until /proc says the child is stopped.
func waitStopped(t *testing.T, c *child) {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
		if i := bytes.LastIndexByte(raw, ')'); i >= 0 && i+2 < len(raw) && raw[i+2] == 'T' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not stopped after %v: %s", c.name, lineTimeout, raw)
		}
		time.Sleep(time.Millisecond)
	}
}

// readPaths are every way to read a Tree, each returning its error.
var readPaths = []struct {
	name string
	read func(tr *Tree) error
}{
	{"Get", func(tr *Tree) error { _, err := tr.Get([]byte("k1")); return err }},
	{"AppendGet", func(tr *Tree) error { _, _, err := tr.AppendGet(nil, []byte("k1")); return err }},
	{"GetEntry", func(tr *Tree) error { _, _, _, err := tr.GetEntry([]byte("k1")); return err }},
	{"Cursor", func(tr *Tree) error {
		c := tr.Cursor()
		for c.Next() {
		}
		return c.Err()
	}},
	{"Cursor with prefix", func(tr *Tree) error {
		c := tr.Cursor()
		c.SetPrefix([]byte("k"))
		for c.Next() {
		}
		return c.Err()
	}},
	{"CommittedMeta", func(tr *Tree) error { _, err := tr.CommittedMeta(0); return err }},
	{"Warm", func(tr *Tree) error { return tr.Warm([]byte("k1"), []byte("k2")) }},
}

// TestReadsReportStoppedWriter: with a writer process stopped (SIGSTOP) in
// the middle of a batch, every read path of a Tree opened with a 200 ms
// ReadTimeout fails with ErrWriterStuck naming the writer's pid and its
// state, a BeginContext gives up with its context's error, and once the
// writer is continued and commits, every read works and sees the batch.
func TestReadsReportStoppedWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	tr, err := Open(path, Options{ReadTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := 0; i < 10; i++ {
		if _, err := tr.Put(fmt.Appendf(nil, "k%d", i), []byte("v"), 1); err != nil {
			t.Fatal(err)
		}
	}
	c := startChild(t, helperArgs{Role: "stopper", Path: path})
	if _, err := c.expect("writing"); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, c)
	pid := c.cmd.Process.Pid

	for _, rp := range readPaths {
		t.Run(rp.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- rp.read(tr) }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrWriterStuck) {
					t.Fatalf("%s: %v, want ErrWriterStuck", rp.name, err)
				}
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("pid %d", pid)) || !strings.Contains(msg, "stopped") {
					t.Fatalf("%s: %q does not name the stopped writer, pid %d", rp.name, msg, pid)
				}
			case <-time.After(lineTimeout):
				t.Fatalf("%s still waiting after %v", rp.name, lineTimeout)
			}
		})
	}

	// The read that never waits says so at once (it would have failed
	// with ErrWriterStuck after ReadTimeout had it waited).
	if v, _, _, busy, err := tr.TryAppendGetExpiry(nil, []byte("k1")); !busy || err != nil || v != nil {
		t.Errorf("TryAppendGetExpiry while the writer is stopped: %q, busy %v, %v; want busy", v, busy, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if b, err := tr.BeginContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		if b != nil {
			b.Rollback() // else the deferred Close would wait for it
		}
		t.Fatalf("BeginContext while the writer is stopped: %v, want context.DeadlineExceeded", err)
	}
	if err := tr.CheckContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CheckContext while the writer is stopped: %v, want context.DeadlineExceeded", err)
	}

	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, err := c.expect("committed"); err != nil {
		t.Fatal(err)
	}
	for _, rp := range readPaths {
		if err := rp.read(tr); err != nil {
			t.Errorf("%s after the commit: %v", rp.name, err)
		}
	}
	if v, err := tr.Get([]byte("stopped/3")); err != nil || string(v) != "v" {
		t.Errorf("the stopped batch's key after its commit: %q, %v", v, err)
	}
	if v, _, found, busy, err := tr.TryAppendGetExpiry(nil, []byte("stopped/3")); busy || err != nil || !found || string(v) != "v" {
		t.Errorf("TryAppendGetExpiry after the commit: %q, found %v, busy %v, %v", v, found, busy, err)
	}
	if m, err := tr.CommittedMeta(0); err != nil || m != 7 {
		t.Errorf("CommittedMeta(0) after the commit: %d, %v; want 7", m, err)
	}
	if _, err := c.finish(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
}
