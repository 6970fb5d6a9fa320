package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestVerifyDetectsDamage(t *testing.T) {
	c := fileCLI(t)
	state := filledState(c, t.TempDir(), 2)
	c.ok("--state", state, "set", "charlie-is-a-longer-key", "v")
	if out := c.ok("--state", state, "verify"); !strings.Contains(out, "ok (4 keys") {
		t.Errorf("verify of a sound state printed %q", out)
	}
	// Change one byte of a stored key: its hash no longer matches.
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("charlie-is-a-longer-key"))
	if i < 0 {
		t.Fatal("the key is not stored contiguously in the state file; the test needs another way to damage it")
	}
	data[i] = 'C'
	if err := os.WriteFile(state, data, 0o600); err != nil {
		t.Fatal(err)
	}
	line := c.fails(exitVerify, "--state", state, "verify")
	if !strings.Contains(line, "corrupt") {
		t.Errorf("verify of a damaged state: %q", line)
	}
	c.fails(exitFailure, "--state", state+".missing", "verify")
	r := c.run("--json", "--state", state, "verify")
	if r.code != exitVerify || !strings.Contains(r.stdout, `"ok":false`) {
		t.Errorf("verify --json of a damaged state: exit %d, stdout %q", r.code, r.stdout)
	}
}
