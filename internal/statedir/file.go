package statedir

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// openFlags are added to every open of a file in the directory: no
// symbolic link is followed, the descriptor does not leak into children,
// a planted terminal does not become the controlling one, and a planted
// FIFO does not block the open (the check then refuses it).
const openFlags = unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK

// checkName rejects names that are not one element of a path.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("statedir: invalid file name %q: a name inside the directory is expected", name)
	}
	return nil
}

// OpenFD opens the file name in the directory with flag (O_RDONLY,
// O_RDWR, O_CREAT, O_EXCL, O_TRUNC, ...; openFlags are added) and returns
// its descriptor after checking it by fstat (see the package
// documentation). A file this call creates gets exactly perm (the umask
// does not narrow it). O_TRUNC is applied only after the check passed. A
// symbolic link, a file of another kind, an untrusted owner or a mode that
// lets untrusted users write yield an *UnsafeError; the caller owns the
// descriptor and closes it.
func (d *Dir) OpenFD(name string, flag int, perm os.FileMode) (int, error) {
	if err := checkName(name); err != nil {
		return -1, err
	}
	trunc := flag&unix.O_TRUNC != 0
	flag = flag&^unix.O_TRUNC | openFlags
	fd, created, err := d.openat(name, flag, perm)
	if err != nil {
		if err == unix.ELOOP {
			return -1, d.symlinkError(name)
		}
		return -1, fmt.Errorf("statedir: %w", &os.PathError{Op: "open", Path: d.Join(name), Err: err})
	}
	fail := func(err error) (int, error) {
		unix.Close(fd)
		return -1, err
	}
	if created {
		if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
			return fail(fmt.Errorf("statedir: %w", &os.PathError{Op: "chmod", Path: d.Join(name), Err: err}))
		}
	}
	if err := d.CheckFD(fd, name); err != nil {
		return fail(err)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return fail(fmt.Errorf("statedir: %w", &os.PathError{Op: "fcntl", Path: d.Join(name), Err: err}))
	}
	if trunc {
		if err := unix.Ftruncate(fd, 0); err != nil {
			return fail(fmt.Errorf("statedir: %w", &os.PathError{Op: "truncate", Path: d.Join(name), Err: err}))
		}
	}
	return fd, nil
}

// openat opens name relative to the directory and reports whether this
// call created it. With O_CREAT but not O_EXCL, it opens an existing file
// or creates a new one exclusively, so that it knows which happened.
func (d *Dir) openat(name string, flag int, perm os.FileMode) (fd int, created bool, err error) {
	if flag&unix.O_CREAT == 0 || flag&unix.O_EXCL != 0 {
		fd, err = retryEINTR(func() (int, error) { return unix.Openat(d.fd, name, flag, uint32(perm.Perm())) })
		return fd, err == nil && flag&unix.O_CREAT != 0, err
	}
	for attempt := 0; ; attempt++ {
		fd, err = retryEINTR(func() (int, error) { return unix.Openat(d.fd, name, flag&^unix.O_CREAT, 0) })
		if err != unix.ENOENT {
			return fd, false, err
		}
		fd, err = retryEINTR(func() (int, error) { return unix.Openat(d.fd, name, flag|unix.O_EXCL, uint32(perm.Perm())) })
		if err != unix.EEXIST || attempt >= 3 {
			return fd, err == nil, err
		}
		// Created by someone else between the two opens: open theirs.
	}
}

func retryEINTR(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// symlinkError is the refusal of a name that is a symbolic link.
func (d *Dir) symlinkError(name string) error {
	buf := make([]byte, 4096)
	target := "?"
	if n, err := unix.Readlinkat(d.fd, name, buf); err == nil {
		target = string(buf[:n])
	}
	path := d.Join(name)
	return &UnsafeError{Path: path,
		Problem: fmt.Sprintf("is a symbolic link (to %q), which is not followed: whoever planted it would choose the file this process opens or creates", target),
		Fix:     "remove it: rm " + path}
}

// OpenFile is OpenFD returning an *os.File named by the file's path.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := d.OpenFD(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.Join(name)), nil
}

// OpenLock opens, creating it with perm if missing, the lock file name
// (opened O_RDWR, checked like every file). The caller locks it (flock or
// fcntl) and closes it. A process that only reads a state should not call
// it: it creates a file.
func (d *Dir) OpenLock(name string, perm os.FileMode) (*os.File, error) {
	return d.OpenFile(name, unix.O_RDWR|unix.O_CREAT, perm)
}

// CheckFD applies the file rules to the open descriptor fd of the file
// name in the directory (see the package documentation); a refusal is an
// *UnsafeError.
func (d *Dir) CheckFD(fd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("statedir: %w", &os.PathError{Op: "stat", Path: d.Join(name), Err: err})
	}
	return checkFile(d.Join(name), &st, d.trust, d.shared)
}

// checkFile applies the file rules to st, the fstat of the file at path
// in a directory that is shared or not.
func checkFile(path string, st *unix.Stat_t, trust Trust, shared bool) error {
	if kind := st.Mode & unix.S_IFMT; kind != unix.S_IFREG {
		return &UnsafeError{Path: path, Problem: "is " + kindName(kind) + ", not a regular file", Fix: "remove it: rm " + path}
	}
	switch {
	case shared && !trust.ownerTrusted(st.Uid):
		return &UnsafeError{Path: path,
			Problem: fmt.Sprintf("is owned by %s, not by %s or a user you trust, in a directory every user can create files in",
				userName(st.Uid), trustedByDefault()),
			Fix: fmt.Sprintf("remove it as root or as its owner (rm %s), or keep the state in a directory of your own", path)}
	case !trust.ownerTrusted(st.Uid) && !trust.groupTrusted(st.Gid):
		return untrustedOwner(path, st, false)
	}
	perm := st.Mode & 0o7777
	switch {
	case perm&0o002 != 0:
		return &UnsafeError{Path: path,
			Problem: fmt.Sprintf("can be written by every user (mode %04o)", perm),
			Fix:     "chmod o-w " + path}
	case perm&0o020 != 0 && !trust.groupTrusted(st.Gid):
		return &UnsafeError{Path: path,
			Problem: fmt.Sprintf("can be written by the members of %s, a group you do not trust (mode %04o)", groupName(st.Gid), perm),
			Fix:     fmt.Sprintf("chmod g-w %s, or trust gid %d", path, st.Gid)}
	}
	return nil
}

// kindName names a file type for messages.
func kindName(kind uint32) string {
	switch kind {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	}
	return fmt.Sprintf("a file of type %#o", kind)
}

// Rename renames from to to inside the directory (renameat), replacing to
// if it exists. In a shared directory the kernel refuses to replace a file
// the caller does not own.
func (d *Dir) Rename(from, to string) error {
	if err := errors.Join(checkName(from), checkName(to)); err != nil {
		return err
	}
	if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
		return fmt.Errorf("statedir: %w", &os.LinkError{Op: "rename", Old: d.Join(from), New: d.Join(to), Err: err})
	}
	return nil
}

// Link makes to a new name of the file from inside the directory (linkat,
// which does not follow a symbolic link at from). It fails with an error
// wrapping os.ErrExist if to exists.
func (d *Dir) Link(from, to string) error {
	if err := errors.Join(checkName(from), checkName(to)); err != nil {
		return err
	}
	if err := unix.Linkat(d.fd, from, d.fd, to, 0); err != nil {
		return fmt.Errorf("statedir: %w", &os.LinkError{Op: "link", Old: d.Join(from), New: d.Join(to), Err: err})
	}
	return nil
}

// Remove removes the file name (not a directory) from the directory. A
// missing file yields an error wrapping os.ErrNotExist.
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return fmt.Errorf("statedir: %w", &os.PathError{Op: "remove", Path: d.Join(name), Err: err})
	}
	return nil
}

// Lstat returns the status of name in the directory without following a
// symbolic link (fstatat with AT_SYMLINK_NOFOLLOW). A missing file yields
// an error wrapping os.ErrNotExist.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := checkName(name); err != nil {
		return st, err
	}
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, fmt.Errorf("statedir: %w", &os.PathError{Op: "lstat", Path: d.Join(name), Err: err})
	}
	return st, nil
}

// Names returns the names of the entries of the directory, in directory
// order, read through its descriptor.
func (d *Dir) Names() ([]string, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, fmt.Errorf("statedir: %w", &os.PathError{Op: "open", Path: d.path, Err: err})
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("statedir: read %s: %w", d.path, err)
	}
	return names, nil
}
