package main

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whycache/whycache/internal/pytest"
	"github.com/whycache/whycache/logstore"
)

// TestFormatPython runs the commands on Python whycache's table with
// --format python while a writer writes to it as Python does, and checks
// what each format refuses.
func TestFormatPython(t *testing.T) {
	dsn := os.Getenv("WHYCACHE_TEST_DSN")
	if dsn == "" {
		t.Skip("set WHYCACHE_TEST_DSN=user:pass@tcp(host:3306)/db to run the MySQL tests")
	}
	c := &cli{t: t, store: "mysql:" + dsn, table: randomTable(t, dsn)}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := pytest.Writer{DB: db, Table: c.table}
	state := filepath.Join(t.TempDir(), "py.state")

	// init-schema --format python makes Python's table and nothing else...
	c.ok("--format", "python", "init-schema")
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?", c.table+"%").Scan(&n); err != nil || n != 1 {
		t.Fatalf("init-schema --format python made %d tables (%v); want only the log table", n, err)
	}
	// ... and a Python table outside Python mode is refused, naming it.
	if line := c.fails(exitFailure, "--state", state, "update"); !strings.Contains(line, "--format python") {
		t.Fatalf("update of a Python table without --format python: %s", line)
	}
	if line := c.fails(exitFailure, "init-schema"); !strings.Contains(line, "--format python") {
		t.Fatalf("init-schema of a Python table without --format python: %s", line)
	}

	w.Set(t, "from-python", "pickled elsewhere")
	held := w.Hold(t, logstore.Item{Key: []byte("late"), Value: []byte("committed after a later id")})
	w.Set(t, "after-held", "x")
	held.Commit(t)
	c.ok("--format", "python", "--state", state, "update")
	c.ok("--format", "python", "--state", state, "set", "from-go", "written by go")
	if got := c.ok("--format", "python", "--state", state, "get", "late"); got != "committed after a later id" {
		t.Fatalf("get late = %q", got)
	}
	r := runIn(t, nil, append(c.args(nil), "--state", state, "get", "from-python")...)
	if r.code != 0 || r.stdout != "pickled elsewhere" {
		t.Fatalf("get from-python (a local read, no --format needed) = %q, exit %d, %s", r.stdout, r.code, r.stderr)
	}
	want := map[string]string{"from-python": "pickled elsewhere", "late": "committed after a later id", "after-held": "x", "from-go": "written by go"}
	if got := w.Replay(t); len(got) != len(want) || got["from-go"] != want["from-go"] {
		t.Fatalf("Python's replay = %v, want %v", got, want)
	}
	// WHYCACHE_FORMAT is the default of --format.
	other := filepath.Join(t.TempDir(), "other.state")
	cmd := exec.Command(binPath, append(c.args(nil), "--state", other, "update")...)
	cmd.Env = append(cliEnv(), "WHYCACHE_FORMAT=python")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("update with WHYCACHE_FORMAT=python: %v: %s", err, out)
	}
	c.sameContent(state, other)
	if line := c.fails(exitFailure, "--format", "python", "--state", state, "set", "empty", ""); !strings.Contains(line, "Python") {
		t.Fatalf("set of an empty value in Python mode: %s", line)
	}

	// A rewrite keeps what Python reads; dropping keys is refused.
	w.Set(t, "after-held", "y") // REPLACE: the old row goes
	c.ok("--format", "python", "--state", state, "del", "from-python")
	before := w.Replay(t)
	if line := c.fails(exitFailure, "--format", "python", "--state", state, "rewrite-history", "--drop-prefix", "from"); !strings.Contains(line, "cannot be dropped") {
		t.Fatalf("rewrite-history --drop-prefix in Python mode: %s", line)
	}
	c.ok("--format", "python", "--state", state, "rewrite-history")
	if after := w.Replay(t); len(after) != len(before) || after["after-held"] != "y" || after["from-python"] != "" {
		t.Fatalf("Python's replay after rewrite-history = %v, before %v", after, before)
	}
	fresh := filepath.Join(t.TempDir(), "fresh.state")
	c.ok("--format", "python", "--state", fresh, "update")
	c.ok("--format", "python", "--state", state, "update")
	c.sameContent(state, fresh)
}

func TestFormatFlagRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", "file:" + dir, "--format", "python", "update"}, "MySQL store only"},
		{[]string{"--store", "file:" + dir, "--format", "cobol", "update"}, "want go or python"},
	} {
		r := runIn(t, nil, tc.args...)
		if line := checkFailure(t, r, exitUsage, tc.args); !strings.Contains(line, tc.want) {
			t.Errorf("whycache %s: %s; want it to say %q", strings.Join(tc.args, " "), line, tc.want)
		}
	}
}
