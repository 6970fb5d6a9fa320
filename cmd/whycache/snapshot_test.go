package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// filledState creates dir/a.state with update and writes n keys (and one
// binary value) to it, through the CLI; it returns its path.
func filledState(c *cli, dir string, n int) string {
	c.t.Helper()
	state := filepath.Join(dir, "a.state")
	c.ok("--state", state, "update")
	for i := range n {
		c.ok("--state", state, "set", fmt.Sprintf("key:%03d", i), fmt.Sprintf("value %d", i))
	}
	c.okIn([]byte{0, 1, 2, 0xfe}, "--state", state, "set", "--stdin", "binary")
	return state
}

func TestSnapshotExportImport(t *testing.T) {
	forEachStore(t, func(t *testing.T, c *cli) {
		dir := t.TempDir()
		a := filledState(c, dir, 20)
		c.ok("--state", a, "del", "key:007")

		// To a file and back on a fresh state.
		snap := filepath.Join(dir, "a.snap")
		var sum struct {
			UpdateID uint64 `json:"update_id"`
			Keys     uint64
			Bytes    int64
		}
		c.okJSON(&sum, "--state", a, "snapshot", "export", "--update", "--out", snap)
		fi, err := os.Stat(snap)
		if err != nil {
			t.Fatal(err)
		}
		if sum.UpdateID == 0 || sum.Keys != 20 || sum.Bytes != fi.Size() {
			t.Errorf("export summary %+v, file of %d bytes; want 20 keys and the file's size", sum, fi.Size())
		}
		b := filepath.Join(dir, "b.state")
		var imp struct {
			UpdateID uint64 `json:"update_id"`
			Keys     uint64
		}
		c.okJSON(&imp, "--state", b, "snapshot", "import", snap)
		if imp.UpdateID != sum.UpdateID || imp.Keys != 20 {
			t.Errorf("import summary %+v, want update id %d and 20 keys", imp, sum.UpdateID)
		}
		c.sameContent(a, b)
		c.ok("--state", b, "verify")

		// Through a pipe: export to stdout, import from stdin.
		r := runIn(t, nil, c.args([]string{"--state", a, "snapshot", "export", "--out", "-"})...)
		if r.code != 0 {
			t.Fatalf("export --out -: exit %d: %s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "snapshot of update id") {
			t.Errorf("export --out - did not report on stderr: %q", r.stderr)
		}
		piped := filepath.Join(dir, "piped.state")
		c.okIn([]byte(r.stdout), "--state", piped, "snapshot", "import", "-")
		c.sameContent(a, piped)

		// Writes after the snapshot: import --update tails the log.
		c.ok("--state", a, "set", "after", "snapshot")
		c.ok("--state", a, "del", "key:001")
		c.ok("--state", a, "update")
		tailed := filepath.Join(dir, "tailed.state")
		c.ok("--state", tailed, "snapshot", "import", "--update", snap)
		c.sameContent(a, tailed)

		// A damaged snapshot is refused and the state stays as it was.
		data, err := os.ReadFile(snap)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x40
		bad := filepath.Join(dir, "bad.snap")
		if err := os.WriteFile(bad, data, 0o600); err != nil {
			t.Fatal(err)
		}
		line := c.fails(1, "--state", b, "snapshot", "import", bad)
		if !strings.Contains(line, "corrupt") {
			t.Errorf("import of a damaged snapshot: %q does not say corrupt", line)
		}
		c.fails(1, "--state", b, "snapshot", "import", filepath.Join(dir, "no-such-file"))
		if l := c.content(b); len(l) != 20 {
			t.Errorf("after the refused import the state lists %d keys, want 20", len(l))
		}
		if entries, err := filepath.Glob(snap + ".tmp-*"); err != nil || len(entries) != 0 {
			t.Errorf("temporary export files left behind: %v %v", entries, err)
		}
	})
}

// rewriteSummary is the --json output of rewrite-history.
type rewriteSummary struct {
	DryRun        bool   `json:"dry_run"`
	Limit         uint64 `json:"limit"`
	Horizon       uint64 `json:"horizon"`
	RecordsBefore uint64 `json:"records_before"`
	RecordsAfter  uint64 `json:"records_after"`
	LiveKeys      uint64 `json:"live_keys"`
	DroppedKeys   uint64 `json:"dropped_keys"`
}

func TestRewriteHistory(t *testing.T) {
	forEachStore(t, func(t *testing.T, c *cli) {
		dir := t.TempDir()
		a := filledState(c, dir, 10)
		early := filepath.Join(dir, "early.state")
		c.ok("--state", early, "update")
		// Superseded multi-key records, overwrites and a delete marker.
		c.ok("--state", a, "del", "key:000", "key:001", "key:002")
		c.ok("--state", a, "set", "key:000", "again")
		c.ok("--state", a, "set", "key:001", "again")
		c.ok("--state", a, "set", "key:003", "overwritten")
		c.ok("--state", a, "set", "tmp:1", "dropped later")
		c.ok("--state", a, "set", "tmp:2", "dropped later")
		c.ok("--state", a, "update")

		// Keeping the delete markers (all above id 1) raises no horizon.
		var keep rewriteSummary
		c.okJSON(&keep, "--state", a, "rewrite-history", "--dry-run", "--keep-deletes-above", "1")
		if keep.Horizon != 0 {
			t.Errorf("--keep-deletes-above 1: horizon %d, want 0 (no delete marker dropped)", keep.Horizon)
		}

		var dry1, dry2, real rewriteSummary
		c.okJSON(&dry1, "--state", a, "rewrite-history", "--dry-run")
		c.okJSON(&dry2, "--state", a, "rewrite-history", "--dry-run")
		if dry1.Horizon == 0 {
			t.Errorf("dry run: horizon 0, want the id of the dropped delete marker")
		}
		if !dry1.DryRun || dry1 != dry2 {
			t.Errorf("dry runs differ (the first changed the log?): %+v vs %+v", dry1, dry2)
		}
		c.okJSON(&real, "--state", a, "rewrite-history")
		if real.RecordsBefore != dry1.RecordsBefore || real.RecordsAfter != dry1.RecordsAfter {
			t.Errorf("rewrite %+v does not match its dry run %+v", real, dry1)
		}
		if real.RecordsAfter >= real.RecordsBefore || real.LiveKeys != 12 {
			t.Errorf("rewrite: %+v, want fewer records after and 12 live keys", real)
		}
		fresh := filepath.Join(dir, "fresh.state")
		c.ok("--state", fresh, "update")
		c.sameContent(a, fresh)
		var again rewriteSummary
		c.okJSON(&again, "--state", a, "rewrite-history", "--dry-run")
		if again.RecordsBefore != real.RecordsAfter || again.RecordsAfter != real.RecordsAfter {
			t.Errorf("dry run after the rewrite: %+v, want %d records before and after", again, real.RecordsAfter)
		}

		// --drop-prefix removes keys from the history: fresh states lack them.
		var drop rewriteSummary
		c.okJSON(&drop, "--state", a, "rewrite-history", "--drop-prefix", "tmp:", "--drop-prefix", "key:00")
		if drop.DroppedKeys != 2+9 || drop.Horizon == 0 {
			t.Errorf("drop-prefix rewrite: %+v, want 11 dropped keys and a horizon", drop)
		}
		dropped := filepath.Join(dir, "dropped.state")
		c.ok("--state", dropped, "update")
		if got := c.ok("--state", dropped, "ls"); got != "binary\n" {
			t.Errorf("state built after --drop-prefix lists %q, want only binary", got)
		}
		// A state behind the horizon rebuilds on its next update.
		c.ok("--state", early, "update")
		c.sameContent(dropped, early)
	})
}
