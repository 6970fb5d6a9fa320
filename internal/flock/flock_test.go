//go:build unix

package flock

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/whycache/whycache/internal/testproc"
	"golang.org/x/sys/unix"
)

// openLock opens path as a new open file description, closed at cleanup.
func openLock(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// mustTry fails the test unless TryLock on fd reports want.
func mustTry(t *testing.T, fd int, want bool) {
	t.Helper()
	ok, err := TryLock(fd)
	if err != nil || ok != want {
		t.Fatalf("TryLock = %v, %v; want %v", ok, err, want)
	}
}

// onWait installs a waitHook that closes the returned channel the first
// time a Lock waits, and removes it at cleanup.
func onWait(t *testing.T) <-chan struct{} {
	waiting := make(chan struct{})
	var once sync.Once
	waitHook = func() { once.Do(func() { close(waiting) }) }
	t.Cleanup(func() { waitHook = nil })
	return waiting
}

func TestTryLockExcludesOtherDescriptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := openLock(t, path), openLock(t, path)
	mustTry(t, a, true)
	mustTry(t, a, true) // re-taking through the same description succeeds
	mustTry(t, b, false)
	if err := Unlock(a); err != nil {
		t.Fatal(err)
	}
	mustTry(t, b, true)
	mustTry(t, a, false)
}

func TestLockWaitsForRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	holder, waiter := openLock(t, path), openLock(t, path)
	mustTry(t, holder, true)
	waiting := onWait(t)
	done := make(chan error, 1)
	go func() { done <- Lock(context.Background(), waiter) }()
	<-waiting
	select {
	case err := <-done:
		t.Fatalf("Lock returned %v while the lock was held", err)
	default:
	}
	if err := Unlock(holder); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	mustTry(t, holder, false) // the waiter holds it now
}

func TestLockCancelledWhileHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	holder, waiter, other := openLock(t, path), openLock(t, path), openLock(t, path)
	mustTry(t, holder, true)
	waiting := onWait(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Lock(ctx, waiter) }()
	<-waiting
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock cancelled while held: %v, want context.Canceled", err)
	}
	if err := Unlock(holder); err != nil {
		t.Fatal(err)
	}
	mustTry(t, other, true) // the cancelled waiter took nothing
}

func TestLockDoneContextTakesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	fd, other := openLock(t, path), openLock(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Lock(ctx, fd); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a done context: %v, want context.Canceled", err)
	}
	mustTry(t, other, true)
}

func TestLockBadDescriptor(t *testing.T) {
	fd := openLock(t, filepath.Join(t.TempDir(), "lock"))
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(dup)
	if err := Lock(context.Background(), dup); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Lock on a closed descriptor: %v, want EBADF", err)
	}
	if err := Unlock(dup); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Unlock on a closed descriptor: %v, want EBADF", err)
	}
}

// TestHelperHoldLock is the body of the helper process (testproc): it
// takes the lock on the file its argument names, prints "locked" and
// holds it until its standard input closes. It does nothing in a normal
// run.
func TestHelperHoldLock(t *testing.T) {
	fd := openLock(t, testproc.Arg(t))
	if err := Lock(context.Background(), fd); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
}

func TestLockHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	p := testproc.Start(t, "holder", "TestHelperHoldLock", path)
	if _, line, ok := p.Await(0, nil); !ok || line != "locked" {
		t.Fatalf("helper did not take the lock: %q", p.Tail(10))
	}
	fd := openLock(t, path)
	waiting := onWait(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Lock(ctx, fd) }()
	<-waiting
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock cancelled while another process holds it: %v", err)
	}
	// Once the helper exits, its lock is released and Lock takes it.
	waitHook = nil
	p.CloseStdin()
	if err := p.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if err := Lock(context.Background(), fd); err != nil {
		t.Fatalf("Lock after the holder exited: %v", err)
	}
}
