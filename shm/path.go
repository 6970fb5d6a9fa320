package shm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// PathStatus tells what the path a File was opened at names now.
type PathStatus int

const (
	// PathCurrent: the path names the open file.
	PathCurrent PathStatus = iota
	// PathRemoved: nothing is at the path (the file, or a directory on the
	// way to it, was removed). The open file keeps working but nobody who
	// opens the path later will see it.
	PathRemoved
	// PathReplaced: the path names another file (a rename over it, a new
	// file created after a removal, or a symbolic link put in its place).
	PathReplaced
)

// String returns "current", "removed" or "replaced".
func (s PathStatus) String() string {
	switch s {
	case PathCurrent:
		return "current"
	case PathRemoved:
		return "removed"
	case PathReplaced:
		return "replaced"
	}
	return fmt.Sprintf("PathStatus(%d)", int(s))
}

// CheckPath reports whether the path the file was opened at (Path) still
// names it, comparing the device and inode of the open file (fstat) with
// those of the path (stat; for OpenIn, fstatat of the name in the opened
// directory). It is how a long-lived process notices that its
// state file was removed or replaced under it. Errors other than a missing
// path (a permission denied on a directory, say) are returned as such.
func (f *File) CheckPath() (PathStatus, error) {
	var open, named unix.Stat_t
	if err := unix.Fstat(f.fd, &open); err != nil {
		return 0, fmt.Errorf("shm: stat %s: %w", f.path, err)
	}
	if err := f.statPath(&named); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return PathRemoved, nil
		}
		return 0, fmt.Errorf("shm: stat %s: %w", f.path, err)
	}
	if named.Dev != open.Dev || named.Ino != open.Ino {
		return PathReplaced, nil
	}
	return PathCurrent, nil
}

// statPath stats the path the file was opened at: for a File opened with
// OpenIn, the name relative to the directory's descriptor without
// following a symbolic link (a link put in its place is another file);
// for Open, the path as Open resolved it.
func (f *File) statPath(st *unix.Stat_t) error {
	if f.dir != nil {
		return unix.Fstatat(f.dir.FD(), f.name, st, unix.AT_SYMLINK_NOFOLLOW)
	}
	return unix.Stat(f.path, st)
}
