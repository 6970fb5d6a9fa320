package main

import (
	"os"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	r := runIn(t, nil, "demo")
	if r.code != 0 {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("demo wrote to stderr:\n%s", r.stderr)
	}
	out := r.stdout
	for _, want := range []string{
		"1. One machine, several processes", "saw the new value", "no Update",
		"2. Concurrent writes", "3. A second machine catches up", "4. Snapshot export",
		"LoadSnapshot", "5. Rewrite the history", "RewriteHistory:", "Done in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if n := strings.Count(out, "reader process ("); n != 3 {
		t.Errorf("demo reported %d reader processes, want 3", n)
	}
	if n := strings.Count(out, "same content as A: yes") + strings.Count(out, "same content as machine A: yes"); n != 4 {
		t.Errorf("demo confirmed %d machines with the same content, want 4:\n%s", n, out)
	}
	if strings.Contains(out, "NO (unexpected") {
		t.Errorf("demo found differing content:\n%s", out)
	}
	first, _, _ := strings.Cut(out, "\n")
	dir := first[strings.LastIndex(first, " ")+1:]
	if !strings.HasPrefix(dir, os.TempDir()) {
		t.Fatalf("cannot find the demo directory in %q", first)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("demo left %s behind (stat: %v)", dir, err)
	}
}
