package whycache

import (
	"fmt"
	"os"

	"github.com/whycache/whycache/internal/flock"
)

// followLock is the leader lock of Follow: an flock on a file beside the
// state file. flock locks belong to the open file description, so two
// followers in one process exclude each other as two processes do, and the
// kernel releases the lock when its holder's descriptor closes (including
// when the process dies). A followLock is used by one goroutine.
type followLock struct {
	path string
	f    *os.File
}

// openFollowLock opens (creating if needed) the follow lock of the
// instance's state file, in the checked state directory, never following
// a symbolic link.
func (c *Instance) openFollowLock() (*followLock, error) {
	name := c.name + ".follow"
	f, err := c.dir.OpenLock(name, c.opts.FileMode)
	if err != nil {
		return nil, withContext("follow: open lock", wrapStateErr(err))
	}
	return &followLock{path: c.dir.Join(name), f: f}, nil
}

// tryLock takes the lock without waiting; it reports false when another
// holder has it.
func (l *followLock) tryLock() (bool, error) {
	ok, err := flock.TryLock(int(l.f.Fd()))
	if err != nil {
		return false, fmt.Errorf("whycache: follow: lock %s: %w", l.path, err)
	}
	return ok, nil
}

// close releases the lock (if held) and the descriptor.
func (l *followLock) close() error { return l.f.Close() }
