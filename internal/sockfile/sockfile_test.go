package sockfile

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/whycache/whycache/internal/statedir"
)

func TestListenModeAndCleanup(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o660, 0o666} {
		dir := t.TempDir()
		path := filepath.Join(dir, "s.sock")
		l, err := Listen(path, mode, statedir.Trust{})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != mode {
			t.Errorf("mode %v: socket file has mode %v", mode, fi.Mode())
		}
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Write([]byte("x"))
				c.Close()
			}
		}()
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err != nil || buf[0] != 'x' {
			t.Fatalf("read %q, %v", buf, err)
		}
		c.Close()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l.Close() // a second Close is harmless
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left after Close: %v", err)
		}
	}
}

func TestListenRefuses(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the socket path
		want  error
	}{
		{"regular file at the path", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "s.sock")
			os.WriteFile(p, []byte("data"), 0o600)
			return p
		}, statedir.ErrUnsafe},
		{"symlink at the path", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "s.sock")
			os.Symlink(filepath.Join(dir, "elsewhere"), p)
			return p
		}, statedir.ErrUnsafe},
		{"directory writable by all, not sticky", func(t *testing.T, dir string) string {
			os.Chmod(dir, 0o777)
			return filepath.Join(dir, "s.sock")
		}, statedir.ErrUnsafe},
		{"directory is a symlink", func(t *testing.T, dir string) string {
			real := filepath.Join(dir, "real")
			os.Mkdir(real, 0o700)
			os.Symlink(real, filepath.Join(dir, "link"))
			return filepath.Join(dir, "link", "s.sock")
		}, statedir.ErrUnsafe},
		{"live socket", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "s.sock")
			l, err := Listen(p, 0o600, statedir.Trust{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return p
		}, ErrInUse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)
			before, _ := os.Lstat(path)
			l, err := Listen(path, 0o600, statedir.Trust{})
			if err == nil {
				l.Close()
				t.Fatal("Listen succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if after, _ := os.Lstat(path); before != nil && (after == nil || !os.SameFile(before, after)) {
				t.Errorf("the file at %s was replaced or removed", path)
			}
		})
	}
}

func TestListenRemovesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	// A socket left by a server that died: bound, never removed.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(path, 0o600, statedir.Trust{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
}
