// Package flock takes flock(2) locks with waits that honour a context.
//
// A flock belongs to an open file description: two descriptors opened
// separately on one file exclude each other, in one process as in two, and
// the kernel releases the lock when the last descriptor of its description
// is closed (including when the process dies). A blocking flock cannot be
// interrupted by a context, so Lock polls: it tries without blocking and
// sleeps a short, growing backoff between attempts, returning as soon as
// the context is done.
package flock

import (
	"context"
	"time"
)

// Backoff bounds of Lock: the first sleep after a failed attempt, and the
// longest one. A waiter notices a released lock at most maxBackoff late.
const (
	minBackoff = 50 * time.Microsecond
	maxBackoff = 5 * time.Millisecond
)

// Lock takes the exclusive flock on fd, waiting while another open file
// description holds it. It returns ctx.Err() (unwrapped) without taking the
// lock when ctx is done before the lock is taken, checked before the first
// attempt and at once when ctx ends during a wait. Other errors are the
// flock errno (EBADF, ENOLCK, ...); EINTR is retried.
func Lock(ctx context.Context, fd int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var timer *time.Timer
	backoff := minBackoff
	for {
		ok, err := TryLock(fd)
		if ok || err != nil {
			if timer != nil {
				timer.Stop()
			}
			return err
		}
		if waitHook != nil {
			waitHook()
		}
		if timer == nil {
			timer = time.NewTimer(backoff)
		} else {
			timer.Reset(backoff)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// waitHook, when set (by tests), is called each time Lock finds the lock
// held and is about to wait.
var waitHook func()
