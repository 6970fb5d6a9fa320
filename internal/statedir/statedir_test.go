package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Foreign ids for the rules about other owners. As root, the tests chown
// files to them; no such user or group needs to exist.
const (
	otherUID = 4242
	otherGID = 4343
)

// needRoot skips a test that must chown files to another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: giving a file to another owner (chown) needs root, and this test runs as uid", os.Geteuid())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantUnsafe fails the test unless err is an *UnsafeError wrapping
// ErrUnsafe whose message holds every one of words.
func wantUnsafe(t *testing.T, err error, words ...string) {
	t.Helper()
	var ue *UnsafeError
	if !errors.Is(err, ErrUnsafe) || !errors.As(err, &ue) {
		t.Fatalf("err = %v, want an *UnsafeError", err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if ue.Fix == "" || ue.Problem == "" || ue.Path == "" {
		t.Errorf("incomplete refusal %+v", ue)
	}
}

// TestOpenDirRules applies each directory rule to a directory made to
// break it (or to pass it).
func TestOpenDirRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		root  bool // needs root (chown)
		setup func(t *testing.T, path string)
		opts  Options
		want  []string // words of the refusal; nil: accepted
		// shared is whether an accepted directory is shared.
		shared bool
	}{
		{name: "own 0700", setup: mkdirMode(0o700)},
		{name: "own 0755", setup: mkdirMode(0o755)},
		{name: "own 0750 group-writable by no one", setup: mkdirMode(0o750)},
		{name: "writable by every user", setup: mkdirMode(0o777), want: []string{"every user", "0777", "chmod o-w"}},
		{name: "writable by every user, sticky", setup: mkdirMode(0o1777), shared: true},
		{name: "writable by an untrusted group", root: true, setup: chownDir(0o770, -1, otherGID),
			want: []string{"group", "gid 4343", "chmod g-w", "trust gid 4343"}},
		{name: "writable by a trusted group", root: true, setup: chownDir(0o770, -1, otherGID),
			opts: Options{Trust: Trust{Groups: []int{otherGID}}}},
		{name: "writable by an untrusted group, sticky", root: true, setup: chownDir(0o1770, -1, otherGID), shared: true},
		{name: "owned by another user", root: true, setup: chownDir(0o700, otherUID, -1),
			want: []string{"owned by uid 4242", "another user created", "rm -r", "trust uid 4242"}},
		{name: "owned by another user, sticky and writable by all", root: true, setup: chownDir(0o1777, otherUID, -1),
			want: []string{"owned by uid 4242"}},
		{name: "owned by a trusted user", root: true, setup: chownDir(0o755, otherUID, -1),
			opts: Options{Trust: Trust{Users: []int{otherUID}}}},
		{name: "owned by another user in a trusted group", root: true, setup: chownDir(0o750, otherUID, otherGID),
			opts: Options{Trust: Trust{Groups: []int{otherGID}}}},
		{name: "symbolic link to a good directory", setup: func(t *testing.T, path string) {
			must(t, os.Mkdir(path+".real", 0o700))
			must(t, os.Symlink(path+".real", path))
		}, want: []string{"symbolic link", ".real", "rm "}},
		{name: "dangling symbolic link", setup: func(t *testing.T, path string) {
			must(t, os.Symlink(path+".nowhere", path))
		}, opts: Options{Create: true}, want: []string{"symbolic link"}},
		{name: "regular file", setup: func(t *testing.T, path string) {
			must(t, os.WriteFile(path, nil, 0o600))
		}, opts: Options{Create: true}, want: []string{"not a directory", "rm "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			path := filepath.Join(t.TempDir(), "state")
			tc.setup(t, path)
			d, err := Open(path, tc.opts)
			if tc.want != nil {
				wantUnsafe(t, err, tc.want...)
				if _, err := os.Stat(path + ".nowhere"); err == nil {
					t.Errorf("a directory was created through the symbolic link")
				}
				return
			}
			must(t, err)
			defer d.Close()
			if d.Shared() != tc.shared {
				t.Errorf("Shared() = %v, want %v", d.Shared(), tc.shared)
			}
		})
	}
}

func mkdirMode(mode os.FileMode) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		must(t, os.Mkdir(path, 0o700))
		must(t, os.Chmod(path, mode|chmodSticky(mode)))
	}
}

// chmodSticky converts the Unix sticky bit in mode to os.ModeSticky.
func chmodSticky(mode os.FileMode) os.FileMode {
	if mode&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

func chownDir(mode os.FileMode, uid, gid int) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		must(t, os.Mkdir(path, 0o700))
		must(t, os.Chown(path, uid, gid))
		must(t, os.Chmod(path, mode&0o777|chmodSticky(mode)))
	}
}

// TestOpenDirCreate: a missing directory is created with exactly DirMode
// (0700 by default) whatever the umask, and missing parents are created;
// without Create, a missing directory is os.ErrNotExist.
func TestOpenDirCreate(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	base := t.TempDir()
	if _, err := Open(filepath.Join(base, "missing"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a missing directory without Create: %v", err)
	}
	for _, tc := range []struct {
		mode, want os.FileMode
	}{{0, 0o700}, {0o750, 0o750}, {0o711, 0o711}} {
		path := filepath.Join(base, "parent", tc.want.String(), "state")
		d, err := Open(path, Options{Create: true, DirMode: tc.mode})
		must(t, err)
		st, err := os.Lstat(path)
		must(t, err)
		if st.Mode().Perm() != tc.want || !st.IsDir() {
			t.Errorf("DirMode %v: created %v, want %v", tc.mode, st.Mode(), tc.want)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
			t.Errorf("created directory owned by uid %d", uid)
		}
		d.Close()
	}
	// A DirMode that would let others write is refused like an existing
	// directory with it.
	_, err := Open(filepath.Join(base, "open"), Options{Create: true, DirMode: 0o777})
	wantUnsafe(t, err, "every user")
}

// TestDefaultDir: one directory per effective uid.
func TestDefaultDir(t *testing.T) {
	d := DefaultDir()
	if want := "whycache-" + strconv.Itoa(os.Geteuid()); filepath.Base(d) != want {
		t.Fatalf("DefaultDir() = %q, want a directory named %q", d, want)
	}
}

// openTestDir opens a new directory of the caller with mode 0700.
func openTestDir(t *testing.T, opts Options) *Dir {
	t.Helper()
	opts.Create = true
	d, err := Open(filepath.Join(t.TempDir(), "state"), opts)
	must(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

// TestOpenFileRules applies each file rule to a file made to break it (or
// to pass it).
func TestOpenFileRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		root   bool
		dir    os.FileMode // mode of the directory; 0 means 0700
		trust  Trust
		setup  func(t *testing.T, path string)
		flag   int
		want   []string // words of the refusal; nil: accepted
		target bool     // the test plants a link to path+".target", which must not come to exist
	}{
		{name: "own 0600", setup: writeFile(0o600, -1, -1), flag: unix.O_RDWR},
		{name: "own 0644", setup: writeFile(0o644, -1, -1), flag: unix.O_RDONLY},
		{name: "writable by every user", setup: writeFile(0o646, -1, -1), flag: unix.O_RDWR,
			want: []string{"every user", "0646", "chmod o-w"}},
		{name: "writable by an untrusted group", root: true, setup: writeFile(0o660, -1, otherGID), flag: unix.O_RDWR,
			want: []string{"gid 4343", "chmod g-w"}},
		{name: "writable by a trusted group", root: true, setup: writeFile(0o660, -1, otherGID), flag: unix.O_RDWR,
			trust: Trust{Groups: []int{otherGID}}},
		{name: "owned by another user", root: true, setup: writeFile(0o644, otherUID, -1), flag: unix.O_RDONLY,
			want: []string{"owned by uid 4242", "rm ", "trust uid 4242"}},
		{name: "owned by a trusted user", root: true, setup: writeFile(0o644, otherUID, -1), flag: unix.O_RDONLY,
			trust: Trust{Users: []int{otherUID}}},
		{name: "owned by another user in a trusted group", root: true, setup: writeFile(0o640, otherUID, otherGID), flag: unix.O_RDONLY,
			trust: Trust{Groups: []int{otherGID}}},
		{name: "owned by another user in a shared directory", root: true, dir: 0o1777, setup: writeFile(0o644, otherUID, otherGID),
			flag: unix.O_RDONLY, trust: Trust{Groups: []int{otherGID}}, want: []string{"owned by uid 4242", "every user can create"}},
		{name: "owned by a trusted user in a shared directory", root: true, dir: 0o1777, setup: writeFile(0o644, otherUID, -1),
			flag: unix.O_RDONLY, trust: Trust{Users: []int{otherUID}}},
		{name: "own file in a shared directory", dir: 0o1777, setup: writeFile(0o600, -1, -1), flag: unix.O_RDWR},
		{name: "symbolic link to a file", setup: func(t *testing.T, path string) {
			must(t, os.WriteFile(path+".target", []byte("x"), 0o600))
			must(t, os.Symlink(path+".target", path))
		}, flag: unix.O_RDWR, want: []string{"symbolic link", ".target", "rm "}},
		{name: "dangling symbolic link, create", setup: func(t *testing.T, path string) {
			must(t, os.Symlink(path+".target", path))
		}, flag: unix.O_RDWR | unix.O_CREAT, want: []string{"symbolic link", "rm "}, target: true},
		{name: "dangling symbolic link, exclusive create", setup: func(t *testing.T, path string) {
			must(t, os.Symlink(path+".target", path))
		}, flag: unix.O_RDWR | unix.O_CREAT | unix.O_EXCL, target: true, want: []string{}},
		{name: "FIFO", setup: func(t *testing.T, path string) {
			must(t, unix.Mkfifo(path, 0o600))
		}, flag: unix.O_RDONLY, want: []string{"a FIFO", "rm "}},
		{name: "directory", setup: func(t *testing.T, path string) {
			must(t, os.Mkdir(path, 0o700))
		}, flag: unix.O_RDONLY, want: []string{"a directory", "rm "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			d := openTestDir(t, Options{Trust: tc.trust})
			if tc.dir != 0 {
				must(t, os.Chmod(d.Path(), tc.dir&0o777|chmodSticky(tc.dir)))
				d.Close()
				var err error
				d, err = Open(d.Path(), Options{Trust: tc.trust})
				must(t, err)
			}
			path := d.Join("f")
			tc.setup(t, path)
			fd, err := d.OpenFD("f", tc.flag, 0o600)
			switch {
			case tc.want == nil:
				must(t, err)
				unix.Close(fd)
			case len(tc.want) == 0:
				// Refused by the kernel (the name exists), not by a rule.
				if err == nil || errors.Is(err, ErrUnsafe) {
					t.Fatalf("err = %v, want a failure of the open", err)
				}
			default:
				wantUnsafe(t, err, tc.want...)
			}
			if _, err := os.Lstat(path + ".target"); tc.target && err == nil {
				t.Errorf("a file was created through the symbolic link")
			}
		})
	}
}

func writeFile(mode os.FileMode, uid, gid int) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		must(t, os.WriteFile(path, []byte("planted"), 0o600))
		must(t, os.Chown(path, uid, gid))
		must(t, os.Chmod(path, mode))
	}
}

// TestOpenFileCreate: a created file gets exactly perm whatever the umask;
// an existing file is opened, not recreated; O_TRUNC takes effect only
// after the check passed.
func TestOpenFileCreate(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	d := openTestDir(t, Options{})
	f, err := d.OpenFile("lock", unix.O_RDWR|unix.O_CREAT, 0o640)
	must(t, err)
	f.WriteString("kept")
	f.Close()
	st, err := os.Stat(d.Join("lock"))
	must(t, err)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("created with %v, want 0640", st.Mode())
	}
	f, err = d.OpenLock("lock", 0o600)
	must(t, err)
	f.Close()
	if b, _ := os.ReadFile(d.Join("lock")); string(b) != "kept" {
		t.Fatalf("reopening the lock file changed it: %q", b)
	}
	if st, _ := os.Stat(d.Join("lock")); st.Mode().Perm() != 0o640 {
		t.Fatalf("reopening changed the mode to %v", st.Mode())
	}
	if _, err := d.OpenFD("lock", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("exclusive create of an existing file: %v", err)
	}

	t.Run("truncate after the check", func(t *testing.T) {
		needRoot(t)
		writeFile(0o666, otherUID, -1)(t, d.Join("foreign"))
		_, err := d.OpenFD("foreign", unix.O_RDWR|unix.O_TRUNC, 0o600)
		wantUnsafe(t, err, "owned by uid 4242")
		if b, _ := os.ReadFile(d.Join("foreign")); string(b) != "planted" {
			t.Fatalf("a refused open truncated the file: %q", b)
		}
		fd, err := d.OpenFD("lock", unix.O_RDWR|unix.O_TRUNC, 0o600)
		must(t, err)
		unix.Close(fd)
		if b, _ := os.ReadFile(d.Join("lock")); len(b) != 0 {
			t.Fatalf("O_TRUNC of an accepted file left %q", b)
		}
	})
}

// TestDirOperations: Rename, Link, Remove, Lstat and Names act inside the
// directory, on names only, and through the descriptor: after the path was
// moved and a new directory put in its place, they still act on the
// directory that was opened.
func TestDirOperations(t *testing.T) {
	d := openTestDir(t, Options{})
	fd, err := d.OpenFD("a", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	must(t, err)
	unix.Close(fd)
	must(t, d.Link("a", "b"))
	if err := d.Link("a", "b"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Link over an existing name: %v", err)
	}
	must(t, d.Rename("b", "c"))
	st, err := d.Lstat("c")
	must(t, err)
	if st.Nlink != 2 {
		t.Fatalf("link count %d after Link and Rename", st.Nlink)
	}
	must(t, d.Remove("a"))
	if _, err := d.Lstat("a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Lstat of a removed name: %v", err)
	}
	if err := d.Remove("a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Remove of a missing name: %v", err)
	}
	names, err := d.Names()
	must(t, err)
	if len(names) != 1 || names[0] != "c" {
		t.Fatalf("Names() = %q", names)
	}
	for _, bad := range []string{"", ".", "..", "x/y", "/etc/passwd", "a\x00b"} {
		if _, err := d.OpenFD(bad, unix.O_RDONLY, 0); err == nil || errors.Is(err, ErrUnsafe) {
			t.Errorf("OpenFD(%q): %v, want an invalid name error", bad, err)
		}
		if err := d.Remove(bad); err == nil {
			t.Errorf("Remove(%q) succeeded", bad)
		}
	}

	// Move the directory away and put another in its place: the Dir keeps
	// acting on the one it opened.
	must(t, os.Rename(d.Path(), d.Path()+".moved"))
	must(t, os.Mkdir(d.Path(), 0o700))
	fd, err = d.OpenFD("new", unix.O_RDWR|unix.O_CREAT, 0o600)
	must(t, err)
	unix.Close(fd)
	if _, err := os.Stat(filepath.Join(d.Path()+".moved", "new")); err != nil {
		t.Fatalf("the file was not created in the opened directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.Path(), "new")); err == nil {
		t.Fatal("the file was created in the directory now at the path")
	}

	c, err := d.Clone()
	must(t, err)
	must(t, d.Close())
	if _, err := c.Lstat("new"); err != nil {
		t.Fatalf("the clone does not outlive the original: %v", err)
	}
	must(t, c.Close())
}
