package whycache

import (
	"strings"
	"sync"
	"time"

	"github.com/whycache/whycache/internal/flock"
	"golang.org/x/sys/unix"
)

// Temporary state files (a rebuild, a snapshot load or export, a history
// rewrite, a restore) are built beside the state file, in the state
// directory, under names tempStateName makes. The process building one
// holds an flock on it until it is renamed over the state file or removed,
// so a temporary file whose flock can be taken was left by a process that
// died while building it. newTempState removes such files (sweepTemps)
// before it makes a new one. The flock is independent of the shm writer
// lock (an OFD fcntl lock), and the swap lock is on another file.

// tempStateGrace is how old a temporary state file must be before a
// sweep may remove it: it covers the moment between the file's creation
// and its flock. A variable for tests.
var tempStateGrace = time.Minute

// tempLocks maps the path of a temporary state file this process builds
// to the descriptor that holds its flock.
var tempLocks sync.Map // string -> int

// lockTemp takes the flock that marks the temporary state file name as
// being built. A failure leaves the file unmarked: a sweep may then remove
// it once it is older than tempStateGrace.
func (c *Instance) lockTemp(name string) {
	fd, err := c.dir.OpenFD(name, unix.O_RDONLY, 0)
	if err != nil {
		return
	}
	if ok, err := flock.TryLock(fd); !ok || err != nil {
		unix.Close(fd)
		return
	}
	tempLocks.Store(c.dir.Join(name), fd)
}

// unlockTemp releases the flock of the temporary file name, if held.
func (c *Instance) unlockTemp(name string) {
	if fd, ok := tempLocks.LoadAndDelete(c.dir.Join(name)); ok {
		unix.Close(fd.(int))
	}
}

// removeTemp removes the temporary state file name and releases its flock.
func (c *Instance) removeTemp(name string) {
	c.dir.Remove(name)
	c.unlockTemp(name)
}

// isTempStateName reports whether name is a temporary file of the state
// file named base: base.KIND-HEX as tempStateName makes them.
func isTempStateName(base, name string) bool {
	rest, ok := strings.CutPrefix(name, base+".")
	if !ok {
		return false
	}
	kind, hex, ok := strings.Cut(rest, "-")
	if !ok || len(hex) != 12 || strings.Trim(hex, "0123456789abcdef") != "" {
		return false
	}
	switch kind {
	case "rebuild", "load", "rewrite", "export", "restore":
		return true
	}
	return false
}

// sweepTemps removes the temporary state files beside the state file whose
// builders died. Errors are ignored: a file it cannot remove stays for a
// later sweep.
func (c *Instance) sweepTemps() {
	names, err := c.dir.Names()
	if err != nil {
		return
	}
	for _, name := range names {
		if !isTempStateName(c.name, name) {
			continue
		}
		st, err := c.dir.Lstat(name)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || time.Since(time.Unix(st.Mtim.Unix())) < tempStateGrace {
			continue
		}
		if _, mine := tempLocks.Load(c.dir.Join(name)); mine {
			continue
		}
		fd, err := c.dir.OpenFD(name, unix.O_RDONLY, 0)
		if err != nil {
			continue
		}
		if ok, err := flock.TryLock(fd); ok && err == nil {
			c.dir.Remove(name)
		}
		unix.Close(fd)
	}
}
