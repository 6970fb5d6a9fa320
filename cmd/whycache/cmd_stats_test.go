package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatsShowsRebuild: the operator restores the file store's directory
// from a backup taken before the machine's last write; the machine's next
// `set` succeeds and rebuilds the state from the log behind the scenes.
// `stats` must say so (and keep saying so), not only a log line nobody
// read.
func TestStatsShowsRebuild(t *testing.T) {
	c := fileCLI(t)
	dir := strings.TrimPrefix(c.store, "file:")
	state := filepath.Join(t.TempDir(), "a.state")
	c.ok("--state", state, "update")
	c.ok("--state", state, "set", "kept", "v")
	var before statsJSON
	c.okJSON(&before, "--state", state, "stats", "--local")
	if before.Rebuilds != 0 || before.LastRebuild != nil || before.RebuildWhy != "" {
		t.Fatalf("before any rebuild: %+v", before)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	c.ok("--state", state, "set", "lost", "v")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	c.ok("--state", state, "set", "after", "v")
	var after statsJSON
	c.okJSON(&after, "--state", state, "stats", "--local")
	if after.Rebuilds != 1 || after.LastRebuild == nil || after.RebuildWhy != "log diverged" {
		t.Errorf("after a set found the log restored: rebuilds %d, last %v, cause %q; want 1, a time, \"log diverged\"", after.Rebuilds, after.LastRebuild, after.RebuildWhy)
	}
	if r := c.run("--state", state, "get", "lost"); r.code != 3 {
		t.Errorf("the state still holds a record the restored log lost: get lost exits %d (%q), want 3 (not found)", r.code, r.stdout)
	}
	if out := c.ok("--state", state, "stats"); !strings.Contains(out, "1 from the whole log") || !strings.Contains(out, "log diverged") {
		t.Errorf("stats does not report the rebuild:\n%s", out)
	}
}
