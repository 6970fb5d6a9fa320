package whycache

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// followLock is the leader lock of Follow: an flock on a file beside the
// state file. flock locks belong to the open file description, so two
// followers in one process exclude each other as two processes do, and the
// kernel releases the lock when its holder's descriptor closes (including
// when the process dies). A followLock is used by one goroutine.
type followLock struct {
	path string
	fd   int
}

// openFollowLock opens (creating if needed) the lock file at path.
func openFollowLock(path string, mode os.FileMode) (*followLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755|mode.Perm()); err != nil {
		return nil, fmt.Errorf("whycache: follow: lock directory: %w", err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return nil, fmt.Errorf("whycache: follow: open lock %s: %w", path, err)
	}
	return &followLock{path: path, fd: fd}, nil
}

// tryLock takes the lock without waiting; it reports false when another
// holder has it.
func (l *followLock) tryLock() (bool, error) {
	for {
		err := unix.Flock(l.fd, unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return true, nil
		case unix.EWOULDBLOCK:
			return false, nil
		case unix.EINTR:
			continue
		}
		return false, fmt.Errorf("whycache: follow: lock %s: %w", l.path, err)
	}
}

// close releases the lock (if held) and the descriptor.
func (l *followLock) close() error { return unix.Close(l.fd) }
