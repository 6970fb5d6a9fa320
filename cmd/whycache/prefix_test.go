package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dispatchErr runs a command line in this process and returns its error
// as the library and the command made it, before main prints it.
func dispatchErr(args ...string) error {
	var out, errOut bytes.Buffer
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
		getenv: func(string) string { return "" }}
	return e.dispatch(args)
}

// TestErrorsNameEachPackageOnce makes real failures (a log that is not the
// state's, a flipped byte in a segment, a directory without a log, a
// damaged snapshot, an unreachable server) and checks the errors the
// command gets: "whycache: " at most once and only first, and each
// package's prefix at most once, so that printing them needs no clean-up
// (oneLine only drops the leading prefix the command prints itself).
func TestErrorsNameEachPackageOnce(t *testing.T) {
	dir := t.TempDir()
	file := "file:" + filepath.Join(dir, "log")
	other := "file:" + filepath.Join(dir, "other")
	damaged := filepath.Join(dir, "damaged")
	state := filepath.Join(dir, "state")
	ok := func(args ...string) {
		t.Helper()
		if err := dispatchErr(args...); err != nil {
			t.Fatalf("whycache %s: %v", strings.Join(args, " "), err)
		}
	}
	ok("--store", file, "init-schema")
	ok("--store", other, "init-schema")
	ok("--store", "file:"+damaged, "init-schema")
	ok("--store", file, "--state", state, "update")
	ok("--store", file, "--state", state, "set", "k", "v")
	ok("--store", "file:"+damaged, "--state", filepath.Join(dir, "scratch"), "set", "k", "v")
	segs, err := filepath.Glob(filepath.Join(damaged, "*.seg"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments of the damaged log: %v %v", segs, err)
	}
	seg, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	seg[len(seg)-10] ^= 0x40 // inside the one frame, which was acknowledged
	if err := os.WriteFile(segs[0], seg, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.snap")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a snapshot "), 8), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"update from another log", []string{"--store", other, "--state", state, "update"}, "must be rebuilt"},
		{"set to another log", []string{"--store", other, "--state", state, "set", "k", "w"}, "nothing was committed"},
		{"flipped byte", []string{"--store", "file:" + damaged, "--state", filepath.Join(dir, "fresh"), "update"}, "corrupt data"},
		{"no log", []string{"--store", "file:" + filepath.Join(dir, "none"), "--state", filepath.Join(dir, "s2"), "update"}, "holds no log"},
		{"damaged snapshot", []string{"--store", file, "--state", state, "snapshot", "import", garbage}, "not a whycache snapshot"},
		{"unreachable server", []string{"--store", "mysql:u:p@tcp(127.0.0.1:1)/db", "--state", filepath.Join(dir, "s3"), "update"}, "mysqlstore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dispatchErr(tc.args...)
			if err == nil {
				t.Fatal("succeeded")
			}
			msg := err.Error()
			t.Logf("%s", msg)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if strings.Contains(msg, ": whycache: ") || strings.Count(msg, "whycache: ")-strings.Count(msg, "table whycache: ") > 1 {
				t.Errorf("error %q repeats \"whycache: \"", msg)
			}
			for _, p := range []string{"filestore:", "mysqlstore:", "logstore:", "shm:", "prefixtree:", "statedir:"} {
				if strings.Count(msg, p) > 1 {
					t.Errorf("error %q repeats %q", msg, p)
				}
			}
			if got, want := oneLine(err), strings.ReplaceAll(strings.TrimPrefix(msg, "whycache: "), "\n", "; "); got != want {
				t.Errorf("oneLine changed more than the leading prefix:\n%s\n%s", got, want)
			}
		})
	}
}
