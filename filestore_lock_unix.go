//go:build linux

package whycache

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fsLockFile takes the exclusive flock on f, blocking until it is free. The
// lock belongs to f's open file description: the kernel releases it when f
// is closed or the process dies, so a crashed writer never blocks others.
// flock waits are not interruptible by a context.
func fsLockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("whycache: filestore: lock %s: %w", f.Name(), err)
		}
	}
}

// fsTryLockFile takes the exclusive flock on f without waiting; it reports
// false when another open file description holds it.
func fsTryLockFile(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		return false, nil
	default:
		return false, fmt.Errorf("whycache: filestore: lock %s: %w", f.Name(), err)
	}
}

// fsUnlockFile releases the flock taken by fsLockFile.
func fsUnlockFile(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		return fmt.Errorf("whycache: filestore: unlock %s: %w", f.Name(), err)
	}
	return nil
}

// fsDataSync flushes f's data and the metadata needed to read it back
// (its size) to stable storage.
func fsDataSync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("whycache: filestore: fdatasync %s: %w", f.Name(), err)
		}
	}
}

// fsReserve allocates disk blocks for n bytes at off without changing f's
// size, so that a following write there cannot fail for lack of space. A
// file system without fallocate support is not an error: the write then
// reports ENOSPC itself.
func fsReserve(f *os.File, off, n int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
		switch {
		case err == nil, errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		default:
			return fmt.Errorf("whycache: filestore: reserve %d bytes in %s: %w", n, f.Name(), err)
		}
	}
}

// fsSupported reports nil: the file store runs on Linux.
func fsSupported() error { return nil }
