package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSetTTL: "set --ttl" writes an item that get and ls show, in other
// processes and on another machine's state, until it expires, and not
// after.
func TestSetTTL(t *testing.T) {
	forEachStore(t, func(t *testing.T, c *cli) {
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a.state"), filepath.Join(dir, "b.state")
		c.ok("--state", a, "update")
		if line := c.fails(2, "--state", a, "set", "--ttl", "-1s", "k", "v"); !strings.Contains(line, "--ttl") {
			t.Errorf("set --ttl -1s: %q does not name the flag", line)
		}
		const ttl = 3 * time.Second
		start := time.Now()
		c.ok("--state", a, "set", "--ttl", ttl.String(), "temp", "soon gone")
		c.ok("--state", a, "set", "kept", "stays")
		c.ok("--state", b, "update")
		for _, st := range []string{a, b} {
			if time.Since(start) >= ttl {
				t.Skip("the commands took longer than the ttl")
			}
			if got := c.ok("--state", st, "get", "temp"); got != "soon gone" {
				t.Errorf("get temp before expiry = %q", got)
			}
			if got := c.ok("--state", st, "ls"); got != "kept\ntemp\n" {
				t.Errorf("ls before expiry = %q", got)
			}
		}
		time.Sleep(time.Until(start.Add(ttl)) + 50*time.Millisecond)
		for _, st := range []string{a, b} {
			c.fails(3, "--state", st, "get", "temp")
			if got := c.ok("--state", st, "ls"); got != "kept\n" {
				t.Errorf("ls after expiry = %q", got)
			}
		}
	})
}
