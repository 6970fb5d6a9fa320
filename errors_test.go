package whycache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// wantOnePrefix fails the test unless err's message has this package's
// prefix at most once, and only first, and every other package's prefix
// at most once.
func wantOnePrefix(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	msg := err.Error()
	t.Logf("%s: %s", what, msg)
	if n := strings.Count(msg, errPrefix); n > 1 || (n == 1 && !strings.HasPrefix(msg, errPrefix)) {
		t.Errorf("%s: %q has %q elsewhere than first, or twice", what, msg, errPrefix)
	}
	for _, p := range []string{"filestore: ", "mysqlstore: ", "logstore: ", "shm: ", "prefixtree: ", "statedir: "} {
		if strings.Count(msg, p) > 1 {
			t.Errorf("%s: %q repeats %q", what, msg, p)
		}
	}
}

// TestErrorsNameEachPackageOnce makes real failures through the Instance
// on every store (the store closed under it, the log replaced by another,
// a read-only state written to, a damaged snapshot) and checks that each
// message names each package once, this one first.
func TestErrorsNameEachPackageOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		c := newInstance(t, store, Options{})
		mustUpdate(t, c)
		mustSet(t, c, "k", "v")

		// A read-only state written to.
		ro, err := Open(store, Options{StatePath: c.StatePath(), ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		err = ro.Update(ctx)
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("Update of a read-only state: %v, want ErrReadOnly", err)
		}
		wantOnePrefix(t, "Update of a read-only state", err)

		// The log replaced by another one (a Reset elsewhere).
		if err := store.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = c.Set(ctx, []byte("k"), []byte("w"))
		if !errors.Is(err, ErrLogMismatch) {
			t.Errorf("Set to another log: %v, want ErrLogMismatch", err)
		}
		wantOnePrefix(t, "Set to another log", err)
		strict := newInstance(t, store, Options{StatePath: c.StatePath(), Rebuild: RebuildNever})
		err = strict.Update(ctx)
		if !errors.Is(err, ErrRebuildNeeded) || !errors.Is(err, ErrLogMismatch) {
			t.Errorf("Update from another log: %v, want ErrRebuildNeeded and ErrLogMismatch", err)
		}
		wantOnePrefix(t, "Update from another log", err)

		// A damaged snapshot.
		err = c.LoadSnapshot(ctx, bytes.NewReader(bytes.Repeat([]byte("not a snapshot "), 8)))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("LoadSnapshot of garbage: %v, want ErrCorrupt", err)
		}
		wantOnePrefix(t, "LoadSnapshot of garbage", err)

		// The store closed under the instance.
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		for name, call := range map[string]func() error{
			"Set":               func() error { _, err := c.Set(ctx, []byte("k"), []byte("x")); return err },
			"Update":            func() error { return c.Update(ctx) },
			"Stats":             func() error { _, err := c.Stats(ctx); return err },
			"RewriteHistory":    func() error { return c.RewriteHistory(ctx, 0, RewriteOptions{}) },
			"DeleteAllHistory":  func() error { return c.DeleteAllHistory(ctx) },
			"LoadSnapshot":      func() error { return c.LoadSnapshot(ctx, bytes.NewReader(nil)) },
			"WriteSnapshot":     func() error { _, err := c.WriteSnapshot(new(bytes.Buffer)); return err },
			"Follow (one poll)": func() error { return followOnce(c) },
		} {
			err := call()
			if !errors.Is(err, logstore.ErrClosed) {
				t.Errorf("%s on a closed store: %v, want ErrClosed", name, err)
			}
			wantOnePrefix(t, name+" on a closed store", err)
		}
	})
}

// followOnce runs one poll of Follow and returns its error.
func followOnce(c *Instance) error {
	ctx, cancel := context.WithCancel(context.Background())
	var polled error
	c.Follow(ctx, FollowOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnPoll: func(_ FollowStats, err error) {
		polled = err
		cancel()
	}})
	return polled
}

// TestErrorsNameEachPackageOnceFile adds the failures only the file store
// has: a flipped byte in a segment, a directory without a log.
func TestErrorsNameEachPackageOnceFile(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "log")
	store, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	mustSet(t, c, "k", "v")
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	seg, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	seg[len(seg)-10] ^= 0x40 // inside the one frame, which was acknowledged
	if err := os.WriteFile(segs[0], seg, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := newInstance(t, store, Options{})
	err = fresh.Update(ctx)
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Update over a flipped byte: %v, want ErrCorrupt", err)
	}
	wantOnePrefix(t, "Update over a flipped byte", err)
	_, err = NewFileStoreOptions(filepath.Join(t.TempDir(), "none"), FileStoreOptions{NoCreate: true})
	if !errors.Is(err, logstore.ErrNoLog) {
		t.Errorf("NewFileStoreOptions without a log: %v, want ErrNoLog", err)
	}
	wantOnePrefix(t, "NewFileStoreOptions without a log", err)
}
