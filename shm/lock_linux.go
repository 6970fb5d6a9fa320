package shm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The writer lock is an open-file-description lock on the first byte of
// the file: it excludes other Files in this and other processes, and the
// kernel releases it when the holder's descriptor closes or its process
// dies.

func (f *File) lockFile() error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(f.fd), unix.F_OFD_SETLKW, &lk)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("shm: lock %s: %w", f.path, err)
		}
		return nil
	}
}

func (f *File) unlockFile() {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: 0, Len: 1}
	_ = unix.FcntlFlock(uintptr(f.fd), unix.F_OFD_SETLK, &lk)
}

// lockHeldElsewhere reports whether another open file description holds the
// writer lock.
func (f *File) lockHeldElsewhere() (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := unix.FcntlFlock(uintptr(f.fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false, fmt.Errorf("shm: query lock on %s: %w", f.path, err)
	}
	return lk.Type != unix.F_UNLCK, nil
}
