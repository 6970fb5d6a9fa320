// Package sockfile creates the Unix domain socket of a server in a
// directory checked like a state directory (package statedir): the
// directory must be one that no untrusted user can write (or a sticky
// one such as /tmp), no symbolic link is followed, the socket gets its
// mode before it accepts a connection, and a stale socket is removed only
// when it is a socket of ours that nobody listens on.
package sockfile

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/whycache/whycache/internal/statedir"
	"golang.org/x/sys/unix"
)

// ErrInUse is returned by Listen when a server already listens on the
// path.
var ErrInUse = errors.New("sockfile: a server already listens on the socket")

// Listener is a listening Unix socket. Close stops listening and removes
// the socket file, if it is still the one Listen created.
type Listener struct {
	net.Listener
	dir  *statedir.Dir
	name string
	path string
	dev  uint64
	ino  uint64

	once     sync.Once
	closeErr error
}

// backlog is the listen queue length.
const backlog = 512

// Listen creates a Unix socket at path with exactly mode (the umask does
// not narrow it) and listens on it. The directory of path must pass the
// checks of statedir.Open with trust; it is not created. A file already
// at path is refused unless it is a socket owned by the effective uid
// that no server answers on, which is then removed. Errors wrap
// statedir.ErrUnsafe for a refused directory or file, ErrInUse for a live
// socket.
func Listen(path string, mode os.FileMode, trust statedir.Trust) (*Listener, error) {
	path = filepath.Clean(path)
	dirPath, name := filepath.Split(path)
	if dirPath == "" {
		dirPath = "."
	}
	d, err := statedir.Open(dirPath, statedir.Options{Trust: trust})
	if err != nil {
		return nil, fmt.Errorf("sockfile: directory of %s: %w", path, err)
	}
	l, err := listenIn(d, name, path, mode)
	if err != nil {
		d.Close()
		return nil, err
	}
	return l, nil
}

func listenIn(d *statedir.Dir, name, path string, mode os.FileMode) (*Listener, error) {
	// Bind through the directory's descriptor, so that a directory
	// renamed or replaced since the check is not where the socket goes.
	via := fmt.Sprintf("/proc/self/fd/%d/%s", d.FD(), name)
	if len(via) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("sockfile: socket name %q is too long", name)
	}
	if err := removeStale(d, name, path, via); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sockfile: socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: via}); err != nil {
		unix.Close(fd)
		if err == unix.EADDRINUSE {
			return nil, fmt.Errorf("sockfile: %s appeared while the server started: %w", path, err)
		}
		return nil, fmt.Errorf("sockfile: bind %s: %w", path, err)
	}
	// Nobody can connect before listen, so the mode is in place before
	// the first connection.
	st, err := d.Lstat(name)
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != os.Geteuid()) {
		err = fmt.Errorf("sockfile: %s is not the socket just created", path)
	}
	if err == nil {
		err = unix.Fchmodat(d.FD(), name, uint32(mode.Perm()), 0)
	}
	if err == nil {
		err = unix.Listen(fd, backlog)
	}
	if err != nil {
		unix.Close(fd)
		d.Remove(name)
		return nil, fmt.Errorf("sockfile: %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		d.Remove(name)
		return nil, fmt.Errorf("sockfile: %s: %w", path, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // Close removes it, through the directory
	}
	return &Listener{Listener: ln, dir: d, name: name, path: path, dev: st.Dev, ino: st.Ino}, nil
}

// removeStale removes a socket left by a server of ours that is gone, and
// refuses anything else found at the name.
func removeStale(d *statedir.Dir, name, path, via string) error {
	st, err := d.Lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return &statedir.UnsafeError{Path: path, Problem: "exists and is not a socket", Fix: "choose another path, or remove it if it is yours: rm " + path}
	case int(st.Uid) != os.Geteuid():
		return &statedir.UnsafeError{Path: path, Problem: fmt.Sprintf("is a socket of uid %d, not yours", st.Uid), Fix: "choose another path, or have its owner remove it"}
	}
	if c, err := net.Dial("unix", via); err == nil {
		c.Close()
		return fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if err := d.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sockfile: remove the stale socket: %w", err)
	}
	return nil
}

// Path returns the socket's path as given to Listen (cleaned).
func (l *Listener) Path() string { return l.path }

// Close stops listening and removes the socket file if it is still the
// one Listen created. Later calls do nothing and return the first's
// error.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.closeErr = l.Listener.Close()
		if st, err := l.dir.Lstat(l.name); err == nil && st.Dev == l.dev && st.Ino == l.ino {
			l.dir.Remove(l.name)
		}
		l.dir.Close()
	})
	return l.closeErr
}
