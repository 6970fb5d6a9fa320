package whycache

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Temporary state files (a rebuild, a snapshot load or export, a history
// rewrite) are built beside the state path by tempStatePath. The process
// building one holds an flock on it until it is renamed over the state
// path or removed, so a temporary file whose flock can be taken was left
// by a process that died while building it. newTempState removes such
// files (sweepTemps) before it makes a new one. The flock is independent
// of the shm writer lock (an OFD fcntl lock), and the swap lock is on
// another file.

// tempStateGrace is how old a temporary state file must be before a
// sweep may remove it: it covers the moment between the file's creation
// and its flock. A variable for tests.
var tempStateGrace = time.Minute

// tempLocks maps the path of a temporary state file this process builds
// to the descriptor that holds its flock.
var tempLocks sync.Map // string -> int

// lockTemp takes the flock that marks the temporary state file at path as
// being built. A failure leaves the file unmarked: a sweep may then remove
// it once it is older than tempStateGrace.
func lockTemp(path string) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		unix.Close(fd)
		return
	}
	tempLocks.Store(path, fd)
}

// unlockTemp releases the flock of the temporary file at path, if held.
func unlockTemp(path string) {
	if fd, ok := tempLocks.LoadAndDelete(path); ok {
		unix.Close(fd.(int))
	}
}

// removeTemp removes the temporary state file at path and releases its
// flock.
func removeTemp(path string) {
	os.Remove(path)
	unlockTemp(path)
}

// isTempStateName reports whether name is a temporary file of the state
// file named base: base.KIND-HEX as tempStatePath makes them.
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
	case "rebuild", "load", "rewrite", "export":
		return true
	}
	return false
}

// sweepTemps removes the temporary state files beside the state path
// whose builders died. Errors are ignored: a file it cannot remove stays
// for a later sweep.
func (c *Instance) sweepTemps() {
	dir, base := filepath.Split(c.path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !isTempStateName(base, e.Name()) {
			continue
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < tempStateGrace {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if _, mine := tempLocks.Load(p); mine {
			continue
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(p)
		}
		unix.Close(fd)
	}
}
