package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageAndStoreErrors(t *testing.T) {
	dir := t.TempDir()
	file := "file:" + filepath.Join(dir, "log")
	state := filepath.Join(dir, "state")
	if r := runIn(t, nil, "--store", file, "init-schema"); r.code != 0 {
		t.Fatalf("init-schema: %s", r.stderr)
	}
	noLog := "file:" + filepath.Join(dir, "nolog")
	tests := []struct {
		name string
		args []string
		code int
		want string // in the error line
	}{
		{"no command", nil, exitUsage, "no command"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"bad flag", []string{"--store", file, "get", "--bogus", "k"}, exitUsage, "bogus"},
		{"bad global flag", []string{"--bogus", "get", "k"}, exitUsage, "bogus"},
		{"missing argument", []string{"--store", file, "get"}, exitUsage, "missing argument KEY"},
		{"too many arguments", []string{"--store", file, "get", "a", "b"}, exitUsage, "too many arguments"},
		{"arguments to a command without", []string{"--store", file, "update", "x"}, exitUsage, "takes no arguments"},
		{"no store", []string{"--state", state, "update"}, exitUsage, "no log store"},
		{"no state to read", []string{"--state", state, "get", "k"}, exitFailure, "run 'whycache update' to create and fill it"},
		{"bad store scheme", []string{"--store", "foo:bar", "get", "k"}, exitUsage, "want file:DIR or mysql:DSN"},
		{"empty file store", []string{"--store", "file:", "get", "k"}, exitUsage, "want file:DIR or mysql:DSN"},
		{"bad mysql dsn", []string{"--store", "mysql:user:secret@tcp(127.0.0.1:1", "update"}, exitUsage, "invalid DSN"},
		{"bad table", []string{"--store", "mysql:user:secret@tcp(127.0.0.1:1)/db", "--table", "a;b", "update"}, exitUsage, "--table"},
		{"state and name", []string{"--store", file, "--state", state, "--name", "x", "get", "k"}, exitUsage, "--state and --name"},
		{"bad name", []string{"--store", file, "--name", "a/b", "get", "k"}, exitUsage, "invalid instance name"},
		{"bad progress", []string{"--store", file, "--progress", "sometimes", "update"}, exitUsage, "--progress"},
		{"set value twice", []string{"--store", file, "set", "--stdin", "k", "v"}, exitUsage, "not both"},
		{"set without value", []string{"--store", file, "set", "k"}, exitUsage, "missing VALUE"},
		{"empty key", []string{"--store", file, "--state", state, "set", "", "v"}, exitUsage, "empty key"},
		{"negative limit", []string{"--store", file, "ls", "--limit", "-1"}, exitUsage, "--limit"},
		{"empty drop prefix", []string{"--store", file, "rewrite-history", "--drop-prefix", ""}, exitUsage, "drop every key"},
		{"export without out", []string{"--store", file, "snapshot", "export"}, exitUsage, "--out"},
		{"snapshot without subcommand", []string{"snapshot"}, exitUsage, "missing subcommand"},
		{"unknown snapshot subcommand", []string{"snapshot", "copy"}, exitUsage, `unknown subcommand "copy"`},
		{"bad log format", []string{"--store", file, "follow", "--log-format", "xml"}, exitUsage, "--log-format"},
		{"bad interval", []string{"--store", file, "follow", "--interval", "0s"}, exitUsage, "--interval"},
		{"heartbeat in python mode", []string{"--store", "mysql:user:secret@tcp(127.0.0.1:1)/db", "--format", "python", "follow", "--heartbeat"}, exitUsage, "no meta row"},
		{"help of unknown command", []string{"help", "frobnicate"}, exitUsage, "unknown command"},
		{"no log in the directory", []string{"--store", noLog, "--state", state, "update"}, exitFailure, "whycache init-schema --store " + noLog},
		{"unreachable mysql", []string{"--store", "mysql:user:secret@tcp(127.0.0.1:1)/db", "--state", state, "update"}, exitFailure, "mysql:user:xxxxx@tcp(127.0.0.1:1)/db"},
		{"bad metrics address", []string{"--store", file, "--state", state, "follow", "--metrics-addr", "256.0.0.1:1"}, exitFailure, "--metrics-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runIn(t, nil, tt.args...)
			line := checkFailure(t, r, tt.code, tt.args)
			if !strings.Contains(line, tt.want) {
				t.Errorf("error %q does not contain %q", line, tt.want)
			}
			if strings.Contains(r.stderr+r.stdout, "secret") {
				t.Errorf("the password shows in the output:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	main := runIn(t, nil, "--help")
	if main.code != 0 || main.stderr != "" {
		t.Fatalf("--help: exit %d, stderr %q", main.code, main.stderr)
	}
	for _, want := range []string{"Usage:", "Exit codes:", "3  key not found", "4  verification failed", "--store", "WHYCACHE_STORE", "WHYCACHE_STATE", "WHYCACHE_TABLE", "whycache demo"} {
		if !strings.Contains(main.stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if r := runIn(t, nil, "help"); r.code != 0 || r.stdout != main.stdout {
		t.Errorf("help: exit %d, differs from --help", r.code)
	}
	for _, c := range commands() {
		names := [][]string{{c.name}}
		for _, s := range c.sub {
			names = append(names, []string{c.name, s.name})
		}
		for _, n := range names {
			full := strings.Join(n, " ")
			if !c.hidden && !strings.Contains(main.stdout, "\n  "+full) {
				t.Errorf("--help does not list %q", full)
			}
			r := runIn(t, nil, append(n, "--help")...)
			if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
				t.Errorf("%s --help: exit %d, stdout %q, stderr %q", full, r.code, r.stdout, r.stderr)
			}
			if h := runIn(t, nil, append([]string{"help"}, n...)...); h.code != 0 || h.stdout != r.stdout {
				t.Errorf("help %s: exit %d, differs from %s --help", full, h.code, full)
			}
		}
	}
	if r := runIn(t, nil, "get", "--help"); !strings.Contains(r.stdout, "--update") || !strings.Contains(r.stdout, "Exit codes") {
		t.Errorf("get --help lacks its flag or the exit codes:\n%s", r.stdout)
	}
	// The help never shows a password from the command line.
	if r := runIn(t, nil, "--store", "mysql:u:secret@tcp(h:1)/db", "get", "--help"); strings.Contains(r.stdout, "secret") {
		t.Errorf("get --help shows the password:\n%s", r.stdout)
	}
}

// TestLongKeyNotEchoed checks that a hostile key of 70,000 bytes does not
// come back in full in an error line.
func TestLongKeyNotEchoed(t *testing.T) {
	c := fileCLI(t)
	state := filepath.Join(t.TempDir(), "s.state")
	c.ok("--state", state, "update")
	key := strings.Repeat("k", 70000)
	for _, args := range [][]string{{"set", key, "v"}, {"get", key}, {"del", key}} {
		r := c.run(append([]string{"--state", state}, args...)...)
		if len(r.stderr) > 1024 {
			t.Errorf("%s with a 70,000-byte key: %d bytes of error", args[0], len(r.stderr))
		}
	}
}
