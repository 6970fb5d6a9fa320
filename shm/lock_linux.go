package shm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The writer lock is an open-file-description lock on the first byte of
// the file: it excludes other Files in this and other processes, and the
// kernel releases it when the holder's descriptor closes or its process
// dies. F_OFD_GETLK reports no pid for such locks, so the holder records
// its pid in the header (offWriterPID) for error messages.

// lockFile waits for the writer lock without a bound (F_OFD_SETLKW).
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

// tryLockFile takes the writer lock if no other open file description
// holds it (F_OFD_SETLK) and reports whether it did.
func (f *File) tryLockFile() (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	for {
		err := unix.FcntlFlock(uintptr(f.fd), unix.F_OFD_SETLK, &lk)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EACCES:
			return false, nil
		}
		return false, fmt.Errorf("shm: lock %s: %w", f.path, err)
	}
}

func (f *File) unlockFile() {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: 0, Len: 1}
	_ = unix.FcntlFlock(uintptr(f.fd), unix.F_OFD_SETLK, &lk)
}

// lockHeldElsewhere reports whether another open file description holds the
// writer lock. It works on a descriptor opened read-only, which cannot take
// the lock itself.
func (f *File) lockHeldElsewhere() (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := unix.FcntlFlock(uintptr(f.fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false, fmt.Errorf("shm: query lock on %s: %w", f.path, err)
	}
	return lk.Type != unix.F_UNLCK, nil
}
