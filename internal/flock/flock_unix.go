//go:build unix

package flock

import (
	"errors"

	"golang.org/x/sys/unix"
)

// TryLock takes the exclusive flock on fd without waiting. It reports
// false when another open file description holds it; errors are the flock
// errno. EINTR is retried.
func TryLock(fd int) (bool, error) {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, unix.EINTR):
			continue
		}
		return false, err
	}
}

// Unlock releases the flock on fd (taken by Lock or TryLock through the
// same open file description). EINTR is retried.
func Unlock(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_UN)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
