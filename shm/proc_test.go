package shm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The multi-process tests re-execute the test binary: with procHelperEnv
// set, TestProcHelper runs one role instead of the tests and exits. A
// helper prints its progress as lines on stdout, reports failures on stderr
// with exit status 1, and treats EOF on stdin as the request to stop, so
// helpers also end when the parent test dies.

// procHelperEnv names the environment variable that turns the test binary
// into a helper process; it holds the JSON-encoded procArgs.
const procHelperEnv = "WHYCACHE_SHM_HELPER"

// procArgs tell a helper process what to do.
type procArgs struct {
	Role string
	Path string
	// Payload is what a writer role stores in the block it pushes.
	Payload uint64
}

// procRoles maps a role name to its body. A role gets the open file and
// the stop channel, closed when stdin reaches EOF.
var procRoles = map[string]func(f *File, a procArgs, stop <-chan struct{}) error{
	// stopwriter begins a transaction, pushes a block (changing reachable
	// memory, so the counter is odd), says "writing", stops itself with
	// SIGSTOP and, once continued, commits and says "committed".
	"stopwriter": func(f *File, a procArgs, stop <-chan struct{}) error {
		tx, err := beginPush(f, a.Payload)
		if err != nil {
			return err
		}
		procSay("writing")
		if err := stopSelf(); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		procSay("committed")
		<-stop
		return nil
	},
	// hangwriter begins a transaction, pushes a block, says "writing" and
	// waits, in the middle of its write section, to be killed.
	"hangwriter": func(f *File, a procArgs, stop <-chan struct{}) error {
		tx, err := beginPush(f, a.Payload)
		if err != nil {
			return err
		}
		procSay("writing")
		<-stop
		return tx.Rollback()
	},
	// holder takes the writer lock without changing anything, says
	// "holding", and releases it when stdin ends.
	"holder": func(f *File, a procArgs, stop <-chan struct{}) error {
		tx, err := f.Begin()
		if err != nil {
			return err
		}
		procSay("holding")
		<-stop
		return tx.Rollback()
	},
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

// beginPush begins a transaction that prepends a 64-byte block holding
// payload to the list at root 0 and leaves it open.
func beginPush(f *File, payload uint64) (*Tx, error) {
	tx, err := f.Begin()
	if err != nil {
		return nil, err
	}
	off, err := tx.Alloc(64)
	if err != nil {
		tx.Rollback()
		return nil, err
	}
	b := tx.Fresh(off, 64)
	binary.LittleEndian.PutUint64(b, f.Root(0))
	binary.LittleEndian.PutUint64(b[8:], payload)
	tx.Put64(RootOffset(0), off)
	return tx, tx.Err()
}

// TestProcHelper is the entry point of helper processes; it returns at once
// in a normal test run.
func TestProcHelper(t *testing.T) {
	raw := os.Getenv(procHelperEnv)
	if raw == "" {
		return
	}
	var a procArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		procExit(fmt.Errorf("bad %s: %v", procHelperEnv, err))
	}
	role := procRoles[a.Role]
	if role == nil {
		procExit(fmt.Errorf("unknown role %q", a.Role))
	}
	f, err := Open(a.Path, Options{Walk: listWalk, NoCreate: true})
	if err != nil {
		procExit(err)
	}
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	err = role(f, a, stop)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	procExit(err)
}

func procExit(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// procSay prints one progress line; os.Stdout is unbuffered.
func procSay(line string) { fmt.Fprintln(os.Stdout, line) }

// procLineTimeout bounds the wait for a helper's next line or state, so a
// helper that hangs fails the test instead of stalling it.
const procLineTimeout = 20 * time.Second

// helper is a running helper process, seen from the parent.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout lines; closed at EOF
	stderr bytes.Buffer
}

// startHelper starts a helper process; it is killed when the test ends.
func startHelper(t *testing.T, a procArgs) *helper {
	t.Helper()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcHelper$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), procHelperEnv+"="+string(raw))
	h := &helper{cmd: cmd, lines: make(chan string, 64)}
	cmd.Stderr = &h.stderr
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		h.cmd.Process.Signal(syscall.SIGCONT)
		h.cmd.Process.Kill()
		h.cmd.Wait()
	})
	return h
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// expect waits for the helper's next line and fails the test unless it is
// want.
func (h *helper) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			t.Fatalf("helper %d ended before saying %q; stderr: %s", h.pid(), want, h.stderr.String())
		}
		if line != want {
			t.Fatalf("helper %d said %q, want %q", h.pid(), line, want)
		}
	case <-time.After(procLineTimeout):
		t.Fatalf("helper %d did not say %q within %v", h.pid(), want, procLineTimeout)
	}
}

// waitProcState waits until /proc/PID/stat shows the helper in state
// (one letter, e.g. 'T' for stopped).
func (h *helper) waitProcState(t *testing.T, state byte) {
	t.Helper()
	deadline := time.Now().Add(procLineTimeout)
	for {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.pid()))
		if err == nil {
			if i := bytes.LastIndexByte(raw, ')'); i >= 0 && i+2 < len(raw) && raw[i+2] == state {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper %d not in state %c after %v: %s", h.pid(), state, procLineTimeout, raw)
		}
		time.Sleep(time.Millisecond)
	}
}

// readBeginWatched runs ReadBegin with a watchdog: a ReadBegin that has not
// returned after procLineTimeout fails the test as a hang.
func readBeginWatched(t *testing.T, f *File) (uint64, error, time.Duration) {
	t.Helper()
	type result struct {
		seq uint64
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		seq, err := f.ReadBegin()
		done <- result{seq, err}
	}()
	select {
	case r := <-done:
		return r.seq, r.err, time.Since(start)
	case <-time.After(procLineTimeout):
		t.Fatalf("ReadBegin still waiting after %v: a reader facing a stopped writer hangs", procLineTimeout)
		return 0, nil, 0
	}
}

// newListFile creates a state file at path holding the list 1..n and
// closes it.
func newListFile(t *testing.T, path string, n uint64) {
	t.Helper()
	f, err := Open(path, Options{Walk: listWalk, MaxSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= n; i++ {
		pushBlock(t, f, i)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReaderReportsStoppedWriter: a writer process stopped (SIGSTOP) inside
// its write section makes a reader with a 200 ms bound fail with
// ErrWriterStuck naming the writer's pid and its state; once the writer is
// continued and commits, reads work again and see its commit.
func TestReaderReportsStoppedWriter(t *testing.T) {
	path := t.TempDir() + "/state"
	newListFile(t, path, 3)
	f, err := Open(path, Options{Walk: listWalk, ReadTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	w := startHelper(t, procArgs{Role: "stopwriter", Path: path, Payload: 99})
	w.expect(t, "writing")
	w.waitProcState(t, 'T')

	_, err, waited := readBeginWatched(t, f)
	if !errors.Is(err, ErrWriterStuck) {
		t.Fatalf("ReadBegin facing a stopped writer: %v, want ErrWriterStuck", err)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("pid %d", w.pid()), "stopped", "kill -CONT"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if waited < 200*time.Millisecond {
		t.Errorf("ReadBegin gave up after %v, before its 200ms bound", waited)
	}
	t.Logf("after %v: %v", waited, err)

	if err := w.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "committed")
	seq, err, _ := readBeginWatched(t, f)
	if err != nil {
		t.Fatalf("ReadBegin after the writer committed: %v", err)
	}
	got := listPayloads(f)
	if !f.ReadValid(seq) || len(got) != 4 || got[0] != 99 {
		t.Fatalf("after the commit the list is %v", got)
	}
	w.stdin.Close()
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("writer: %v; stderr: %s", err, w.stderr.String())
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReaderRepairsKilledWriter: a writer SIGKILLed inside its write
// section is not reported stuck: a reader with a 200 ms bound rolls its
// transaction back, as before.
func TestReaderRepairsKilledWriter(t *testing.T) {
	path := t.TempDir() + "/state"
	newListFile(t, path, 3)
	f, err := Open(path, Options{Walk: listWalk, ReadTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	w := startHelper(t, procArgs{Role: "hangwriter", Path: path, Payload: 99})
	w.expect(t, "writing")
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.cmd.Wait()

	seq, err, _ := readBeginWatched(t, f)
	if err != nil {
		t.Fatalf("ReadBegin after the writer was killed: %v, want a repair", err)
	}
	got := listPayloads(f)
	if !f.ReadValid(seq) || len(got) != 3 || got[0] != 3 {
		t.Fatalf("after the repair the list is %v, want the 3 committed blocks", got)
	}
	if r := f.Stats().Recoveries; r != 1 {
		t.Fatalf("recoveries = %d, want 1", r)
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
}

// cancelBound is how soon after its context is cancelled a waiting
// BeginContext must return.
const cancelBound = 50 * time.Millisecond

// beginCancelled starts BeginContext under a context that is cancelled
// 100 ms later, and returns its error and how long after the cancel it
// returned.
func beginCancelled(t *testing.T, f *File) (error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt atomic.Int64
	time.AfterFunc(100*time.Millisecond, func() {
		cancelledAt.Store(time.Now().UnixNano())
		cancel()
	})
	tx, err := f.BeginContext(ctx)
	returned := time.Now()
	if err == nil {
		tx.Rollback()
		t.Fatal("BeginContext succeeded while the lock was held")
	}
	at := cancelledAt.Load()
	if at == 0 {
		t.Fatalf("BeginContext returned before its context was cancelled: %v", err)
	}
	return err, returned.Sub(time.Unix(0, at))
}

// TestBeginContextCancelledWhileProcessHolds: a BeginContext waiting for
// the lock another process holds returns within cancelBound of its
// context's cancellation, with the context's error, and succeeds once the
// lock is released.
func TestBeginContextCancelledWhileProcessHolds(t *testing.T) {
	path := t.TempDir() + "/state"
	newListFile(t, path, 1)
	f := openTest(t, path)
	h := startHelper(t, procArgs{Role: "holder", Path: path})
	h.expect(t, "holding")

	err, late := beginCancelled(t, f)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("BeginContext: %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", h.pid())) {
		t.Errorf("error %q does not name the holder, pid %d", err, h.pid())
	}
	if late > cancelBound {
		t.Errorf("BeginContext returned %v after its context was cancelled, want at most %v", late, cancelBound)
	}

	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("holder: %v; stderr: %s", err, h.stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), procLineTimeout)
	defer cancel()
	tx, err := f.BeginContext(ctx)
	if err != nil {
		t.Fatalf("BeginContext after the holder ended: %v", err)
	}
	tx.Rollback()
}

// TestBeginContextInProcess: the in-process lock honours the context too,
// a context already done fails at once without taking a lock, and a
// context's cause is kept.
func TestBeginContextInProcess(t *testing.T) {
	f := openTest(t, t.TempDir()+"/state")
	held, err := f.Begin()
	if err != nil {
		t.Fatal(err)
	}
	err, late := beginCancelled(t, f)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("BeginContext: %v, want context.Canceled", err)
	}
	if late > cancelBound {
		t.Errorf("BeginContext returned %v after its context was cancelled, want at most %v", late, cancelBound)
	}
	cause := errors.New("shutting down")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(10*time.Millisecond, func() { cancel(cause) })
	if _, err := f.BeginContext(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
		t.Fatalf("BeginContext cancelled with a cause: %v, want context.Canceled and the cause", err)
	}
	if err := held.Rollback(); err != nil {
		t.Fatal(err)
	}

	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := f.BeginContext(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("BeginContext with a done context: %v", err)
	}
	tx, err := f.BeginContext(context.Background())
	if err != nil {
		t.Fatalf("the failed BeginContext calls left a lock taken: %v", err)
	}
	tx.Rollback()
}
