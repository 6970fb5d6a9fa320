package shm

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCheckPath: CheckPath tells a file still at its path from one removed
// (the file or its directory) and from one replaced by a rename, by a new
// file or by a symbolic link to another file, and sees a symbolic link the
// file was opened through as the file.
func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir, path string)
		want   PathStatus
	}{
		{"untouched", func(t *testing.T, dir, path string) {}, PathCurrent},
		{"removed", func(t *testing.T, dir, path string) { must(t, os.Remove(path)) }, PathRemoved},
		{"directory removed", func(t *testing.T, dir, path string) { must(t, os.RemoveAll(dir)) }, PathRemoved},
		{"directory replaced by a file", func(t *testing.T, dir, path string) {
			must(t, os.RemoveAll(dir))
			must(t, os.WriteFile(dir, nil, 0o600))
		}, PathRemoved},
		{"renamed over", func(t *testing.T, dir, path string) {
			other := filepath.Join(dir, "other")
			newListFile(t, other, 1)
			must(t, os.Rename(other, path))
		}, PathReplaced},
		{"removed and created again", func(t *testing.T, dir, path string) {
			must(t, os.Remove(path))
			newListFile(t, path, 1)
		}, PathReplaced},
		{"replaced by a symlink to another file", func(t *testing.T, dir, path string) {
			other := filepath.Join(dir, "other")
			newListFile(t, other, 1)
			must(t, os.Remove(path))
			must(t, os.Symlink(other, path))
		}, PathReplaced},
		{"moved away", func(t *testing.T, dir, path string) { must(t, os.Rename(path, path+".old")) }, PathRemoved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			must(t, os.Mkdir(dir, 0o700))
			path := filepath.Join(dir, "state")
			f, err := Open(path, Options{Walk: listWalk})
			must(t, err)
			defer f.Close()
			tc.change(t, dir, path)
			got, err := f.CheckPath()
			if err != nil || got != tc.want {
				t.Fatalf("CheckPath = %v, %v; want %v", got, err, tc.want)
			}
		})
	}

	t.Run("opened through a symlink", func(t *testing.T) {
		dir := t.TempDir()
		real := filepath.Join(dir, "state")
		newListFile(t, real, 1)
		link := filepath.Join(dir, "link")
		must(t, os.Symlink(real, link))
		f, err := Open(link, Options{Walk: listWalk, NoCreate: true})
		must(t, err)
		defer f.Close()
		if got, err := f.CheckPath(); err != nil || got != PathCurrent {
			t.Fatalf("CheckPath = %v, %v; want current", got, err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
