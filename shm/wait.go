package shm

import (
	"context"
	"fmt"
	"time"
)

// Waiting for the writer locks under a context. The in-process lock is a
// channel, so a wait for it is a select that also watches the context. The
// cross-process lock cannot be waited for that way (a blocked F_OFD_SETLKW
// only ends on a signal), so a wait under a cancellable context makes
// non-blocking attempts with an exponential backoff from lockRetryMin to
// lockRetryMax, watching the context between them. A context that can
// never be cancelled (Done returns nil) waits in the kernel as Begin always
// did.

const (
	// lockRetryMin is the first pause between two attempts to take the
	// cross-process lock: about one short transaction.
	lockRetryMin = 20 * time.Microsecond
	// lockRetryMax caps the pause, and so the delay between the lock's
	// release and a waiter taking it.
	lockRetryMax = 4 * time.Millisecond
)

// lockProcess takes the in-process writer lock, waiting until ctx is done.
func (f *File) lockProcess(ctx context.Context) error {
	select {
	case f.wlock <- struct{}{}:
		return nil
	default:
	}
	done := ctx.Done()
	if done == nil {
		f.wlock <- struct{}{}
		return nil
	}
	select {
	case f.wlock <- struct{}{}:
		return nil
	case <-done:
		return f.lockWaitError(ctx, "another writer of this process")
	}
}

// tryLockProcess takes the in-process writer lock if it is free.
func (f *File) tryLockProcess() bool {
	select {
	case f.wlock <- struct{}{}:
		return true
	default:
		return false
	}
}

// unlockProcess releases the in-process writer lock.
func (f *File) unlockProcess() { <-f.wlock }

// lockFileContext takes the cross-process writer lock, waiting until ctx is
// done. The in-process lock is held.
func (f *File) lockFileContext(ctx context.Context) error {
	if ctx.Done() == nil {
		return f.lockFile()
	}
	var timer *time.Timer
	for delay := lockRetryMin; ; delay = min(2*delay, lockRetryMax) {
		ok, err := f.tryLockFile()
		if err != nil || ok {
			return err
		}
		if timer == nil {
			timer = time.NewTimer(delay)
			defer timer.Stop()
		} else {
			timer.Reset(delay)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return f.lockWaitError(ctx, f.describeLockHolder())
		}
	}
}

// describeLockHolder names the process that holds the cross-process writer
// lock, as far as the header tells: the pid it recorded and what /proc says
// of it.
func (f *File) describeLockHolder() string {
	pid := atomicLoad(f.mem, offWriterPID)
	if pid == 0 {
		return "a writer that has not recorded its pid yet"
	}
	return "writer " + describeProcess(pid).String()
}

// lockWaitError is the error of a lock wait that ctx ended; holder says
// who held the lock. It wraps ctx.Err() and, if the context was cancelled
// with a cause of its own, that cause too.
func (f *File) lockWaitError(ctx context.Context, holder string) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause != nil && cause != err {
		return fmt.Errorf("shm: %s: gave up waiting for the writer lock, held by %s: %w: %w", f.path, holder, err, cause)
	}
	return fmt.Errorf("shm: %s: gave up waiting for the writer lock, held by %s: %w", f.path, holder, err)
}
