package shm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/statedir"
)

// openDirTest opens (creating it) a checked directory in a new temporary
// directory.
func openDirTest(t *testing.T) *statedir.Dir {
	t.Helper()
	d, err := statedir.Open(filepath.Join(t.TempDir(), "state.d"), statedir.Options{Create: true})
	must(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

// TestOpenInCreates: OpenIn creates the file with exactly FileMode whatever
// the umask, leaves no temporary file, keeps working after the Dir it was
// given is closed, and reopens the file it created; a read-only OpenIn of
// a missing file creates nothing.
func TestOpenInCreates(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	d := openDirTest(t)
	if _, err := OpenIn(d, "ro.state", Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read-only OpenIn of a missing file: %v", err)
	}
	f, err := OpenIn(d, "x.state", Options{Walk: listWalk, FileMode: 0o640})
	must(t, err)
	pushBlock(t, f, 7)
	if f.Path() != d.Join("x.state") {
		t.Errorf("Path() = %q", f.Path())
	}
	st, err := os.Stat(d.Join("x.state"))
	must(t, err)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("created with mode %v, want 0640", st.Mode())
	}
	names, err := d.Names()
	must(t, err)
	if len(names) != 1 || names[0] != "x.state" {
		t.Errorf("directory holds %q after the creation", names)
	}
	// The File has its own descriptor of the directory.
	dir2, err := statedir.Open(d.Path(), statedir.Options{})
	must(t, err)
	d.Close()
	if s, err := f.CheckPath(); err != nil || s != PathCurrent {
		t.Errorf("CheckPath after closing the Dir: %v, %v", s, err)
	}
	must(t, f.Check())
	must(t, f.Close())
	g, err := OpenIn(dir2, "x.state", Options{Walk: listWalk, NoCreate: true, ReadOnly: true})
	must(t, err)
	defer g.Close()
	if got := listPayloads(g); len(got) != 1 || got[0] != 7 {
		t.Fatalf("reopened file holds %v", got)
	}
	dir2.Close()
}

// TestOpenInRefuses: OpenIn refuses a symbolic link at the name (to a valid
// state file, or dangling, where it must not create the target), and a
// state file that others can write, with errors wrapping
// statedir.ErrUnsafe; a writable Open of the same path follows the link.
func TestOpenInRefuses(t *testing.T) {
	d := openDirTest(t)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere.state")
	newListFile(t, elsewhere, 2)
	must(t, os.Symlink(elsewhere, d.Join("link.state")))
	must(t, os.Symlink(elsewhere+".new", d.Join("dangling.state")))
	newListFile(t, d.Join("open.state"), 1)
	must(t, os.Chmod(d.Join("open.state"), 0o666))

	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"link.state", Options{}, "symbolic link"},
		{"link.state", Options{ReadOnly: true}, "symbolic link"},
		{"dangling.state", Options{}, "symbolic link"},
		{"open.state", Options{}, "every user"},
	} {
		_, err := OpenIn(d, tc.name, tc.opts)
		if !errors.Is(err, statedir.ErrUnsafe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenIn(%s, read-only %v): %v, want ErrUnsafe saying %q", tc.name, tc.opts.ReadOnly, err, tc.want)
		}
	}
	if _, err := os.Lstat(elsewhere + ".new"); err == nil {
		t.Error("OpenIn created a file through the dangling link")
	}
	// What OpenIn protects from: Open follows the link.
	f, err := Open(d.Join("link.state"), Options{Walk: listWalk, NoCreate: true})
	must(t, err)
	if got := listPayloads(f); len(got) != 2 {
		t.Errorf("Open through the link reads %v", got)
	}
	f.Close()
}

// TestOpenInCheckPath: for a File opened with OpenIn, a symbolic link put
// in place of its name (even one to the file itself) is another file.
func TestOpenInCheckPath(t *testing.T) {
	d := openDirTest(t)
	f, err := OpenIn(d, "x.state", Options{Walk: listWalk})
	must(t, err)
	defer f.Close()
	must(t, os.Rename(d.Join("x.state"), d.Join("moved.state")))
	if s, err := f.CheckPath(); err != nil || s != PathRemoved {
		t.Fatalf("after a rename away: %v, %v", s, err)
	}
	must(t, os.Symlink(d.Join("moved.state"), d.Join("x.state")))
	if s, err := f.CheckPath(); err != nil || s != PathReplaced {
		t.Fatalf("with a link to the file at its name: %v, %v", s, err)
	}
}

// TestOpenInRemovesStaleCreates: creation files that a killed creator
// left are removed when they are old, and kept while they may belong to a
// creation in progress.
func TestOpenInRemovesStaleCreates(t *testing.T) {
	d := openDirTest(t)
	old, fresh := ".x.state.new-0000000000000001", ".x.state.new-0000000000000002"
	for _, n := range []string{old, fresh} {
		must(t, os.WriteFile(d.Join(n), nil, 0o600))
	}
	long := time.Now().Add(-2 * staleCreateAge)
	must(t, os.Chtimes(d.Join(old), long, long))
	f, err := OpenIn(d, "x.state", Options{Walk: listWalk})
	must(t, err)
	f.Close()
	if _, err := os.Lstat(d.Join(old)); err == nil {
		t.Error("a stale creation file was kept")
	}
	if _, err := os.Lstat(d.Join(fresh)); err != nil {
		t.Error("a recent creation file was removed")
	}
}
