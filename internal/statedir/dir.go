package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Options configure Open.
type Options struct {
	// Trust names the owners accepted besides the effective uid and root.
	Trust Trust
	// Create makes Open create a missing directory (and its missing
	// parents, with mode 0755) instead of failing with an error wrapping
	// os.ErrNotExist.
	Create bool
	// DirMode is the mode of a directory Open creates; 0 means 0700. The
	// umask does not narrow it. A mode that lets untrusted users write is
	// refused like an existing directory with that mode.
	DirMode os.FileMode
}

// Dir is an open, checked state directory. It holds a descriptor of the
// directory, and every file operation is relative to it, so renaming or
// replacing the path afterwards does not redirect them. A Dir is safe for
// concurrent use; it must not be used after Close.
type Dir struct {
	path   string
	fd     int
	trust  Trust
	shared bool // sticky and writable by untrusted users: only files of trusted uids are accepted
}

// DefaultDir returns the per-user default state directory:
// /dev/shm/whycache-EUID when /dev/shm exists (memory-backed, like POSIX
// shared memory), else whycache-EUID in os.TempDir(). One directory per
// effective uid means another user can squat the name only to be refused,
// never to share it.
func DefaultDir() string {
	base := os.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	return filepath.Join(base, "whycache-"+strconv.Itoa(os.Geteuid()))
}

// Open opens the directory at path without following a symbolic link in
// its last element, creating it if missing and opts.Create is set, and
// checks it by fstat (see the package documentation). A refused directory
// yields an *UnsafeError wrapping ErrUnsafe; a missing one, without
// Create, an error wrapping os.ErrNotExist.
func Open(path string, opts Options) (*Dir, error) {
	if path == "" {
		return nil, errors.New("statedir: empty directory path")
	}
	path = filepath.Clean(path)
	mode := opts.DirMode.Perm()
	if mode == 0 {
		mode = 0o700
	}
	created := false
	fd, err := openDir(path)
	if errors.Is(err, unix.ENOENT) && opts.Create {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("statedir: create parent of %s: %w", path, err)
		}
		switch err := unix.Mkdir(path, uint32(mode)); {
		case err == nil:
			created = true
		case err != unix.EEXIST:
			return nil, fmt.Errorf("statedir: %w", &os.PathError{Op: "mkdir", Path: path, Err: err})
		}
		fd, err = openDir(path)
	}
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return nil, notDirError(path)
		}
		return nil, fmt.Errorf("statedir: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	d := &Dir{path: path, fd: fd, trust: opts.Trust}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("statedir: %w", &os.PathError{Op: "stat", Path: path, Err: err})
	}
	if created && int(st.Uid) == os.Geteuid() && st.Mode&0o7777 != uint32(mode) {
		// The umask narrowed the mode; the option is what counts.
		if err := unix.Fchmod(fd, uint32(mode)); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("statedir: %w", &os.PathError{Op: "chmod", Path: path, Err: err})
		}
		st.Mode = st.Mode&^0o7777 | uint32(mode)
	}
	if d.shared, err = checkDir(path, &st, opts.Trust); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return d, nil
}

// openDir opens path as a directory, failing with ELOOP or ENOTDIR if its
// last element is a symbolic link or not a directory.
func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// notDirError describes a path that is a symbolic link or not a directory.
func notDirError(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, _ := os.Readlink(path)
		return &UnsafeError{Path: path,
			Problem: fmt.Sprintf("is a symbolic link (to %q), which is not followed: whoever can change the link chooses the directory", target),
			Fix:     fmt.Sprintf("use the directory it points to, or remove the link: rm %s", path)}
	}
	return &UnsafeError{Path: path, Problem: "is not a directory", Fix: fmt.Sprintf("remove it: rm %s", path)}
}

// checkDir applies the directory rules to st, the fstat of the directory
// at path. It reports whether the directory is shared: sticky and
// writable by untrusted users.
func checkDir(path string, st *unix.Stat_t, trust Trust) (shared bool, err error) {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, &UnsafeError{Path: path, Problem: "is not a directory", Fix: "remove it: rm " + path}
	}
	if !trust.ownerTrusted(st.Uid) && !trust.groupTrusted(st.Gid) {
		return false, untrustedOwner(path, st, true)
	}
	perm := st.Mode & 0o7777
	otherW := perm&0o002 != 0
	groupW := perm&0o020 != 0 && !trust.groupTrusted(st.Gid)
	sticky := perm&unix.S_ISVTX != 0
	switch {
	case (otherW || groupW) && sticky:
		return true, nil
	case otherW:
		return false, &UnsafeError{Path: path,
			Problem: fmt.Sprintf("can be written by every user (mode %04o) without the sticky bit: anyone can plant, rename or remove files in it", perm),
			Fix:     "chmod o-w " + path}
	case groupW:
		return false, &UnsafeError{Path: path,
			Problem: fmt.Sprintf("can be written by the members of %s, a group you do not trust (mode %04o): they can plant, rename or remove files in it", groupName(st.Gid), perm),
			Fix:     fmt.Sprintf("chmod g-w %s, or trust gid %d", path, st.Gid)}
	}
	return false, nil
}

// untrustedOwner is the refusal of a directory or file whose owner is not
// trusted.
func untrustedOwner(path string, st *unix.Stat_t, dir bool) error {
	what, rm := "file", "rm "
	if dir {
		what, rm = "directory", "rm -r "
	}
	return &UnsafeError{Path: path,
		Problem: fmt.Sprintf("is owned by %s, not by %s or a user or group you trust: another user created this %s and controls its contents",
			userName(st.Uid), trustedByDefault(), what),
		Fix: fmt.Sprintf("remove it as root or as its owner (%s%s) so that it is created again, or trust uid %d", rm, path, st.Uid)}
}

// Path returns the path the directory was opened at.
func (d *Dir) Path() string { return d.path }

// Join returns the path of name in the directory, for messages.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

// FD returns the directory's descriptor, valid until Close. Callers use it
// for *at system calls of their own and must not close it.
func (d *Dir) FD() int { return d.fd }

// Trust returns the trust the directory was opened with.
func (d *Dir) Trust() Trust { return d.trust }

// Shared reports whether the directory is shared with untrusted users
// under the sticky bit (like /tmp), where only files owned by the caller
// or a trusted uid are accepted.
func (d *Dir) Shared() bool { return d.shared }

// Clone returns an independent Dir on the same directory (a duplicated
// descriptor), for an owner whose lifetime differs from d's.
func (d *Dir) Clone() (*Dir, error) {
	fd, err := unix.FcntlInt(uintptr(d.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("statedir: duplicate descriptor of %s: %w", d.path, err)
	}
	c := *d
	c.fd = fd
	return &c, nil
}

// Close closes the directory's descriptor. Files opened through it stay
// open.
func (d *Dir) Close() error {
	if err := unix.Close(d.fd); err != nil {
		return fmt.Errorf("statedir: close %s: %w", d.path, err)
	}
	return nil
}
