package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whycache/whycache/bench/internal/peers"
)

// TestMain lets the test binary stand in for the command: the parent
// re-executes os.Executable (this binary) as its children, which find
// childEnv set and run the command instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func runCommand(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// TestQuickComparison runs the whole comparison, small, on every system
// available here, and checks the three result files: every system has a
// positive figure for every workload in every round, whycache's ratios
// are 1, and the chart is a PNG.
func TestQuickComparison(t *testing.T) {
	// Race-enabled children would each sleep a second at exit.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	out := t.TempDir()
	stdout, stderr, code := runCommand(t, "--quick", "--keys", "3000", "--duration", "100ms", "--rounds", "2",
		"--write-rate", "2000", "--skip-missing", "--install=false", "--out", out, "--work-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	t.Logf("stderr:\n%s", stderr)
	if !strings.Contains(stdout, "## Ratio to whycache") {
		t.Errorf("stdout is not the Markdown report:\n%s", stdout)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil || string(md) != stdout {
		t.Errorf("results.md (err %v) differs from stdout", err)
	}

	var res results
	js, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if res.Settings.Keys != 3000 || res.Settings.Rounds != 2 {
		t.Errorf("settings = %+v, want 3000 keys and 2 rounds", res.Settings)
	}
	if len(res.Systems)+len(res.Skipped) != len(peers.All()) {
		t.Errorf("%d systems run and %d skipped, want %d in all", len(res.Systems), len(res.Skipped), len(peers.All()))
	}
	for _, sk := range res.Skipped {
		t.Logf("skipped %s: %s", sk.Name, sk.Reason)
		if sk.Name == "whycache" || sk.Name == "go-map" || sk.Name == "fastcache" || sk.Name == "bbolt" {
			t.Errorf("pure-Go system %s skipped: %s", sk.Name, sk.Reason)
		}
	}
	for _, s := range res.Systems {
		for _, w := range workloadDefs {
			rounds := s.Rounds[w.ID]
			if len(rounds) != 2 {
				t.Errorf("%s %s: %d rounds, want 2", s.Name, w.ID, len(rounds))
			}
			for i, v := range rounds {
				if !(v > 0) {
					t.Errorf("%s %s round %d: %v, want > 0", s.Name, w.ID, i+1, v)
				}
			}
			if sum := s.Summary[w.ID]; !(sum.Min <= sum.Median && sum.Median <= sum.Max) {
				t.Errorf("%s %s: summary %+v out of order", s.Name, w.ID, sum)
			}
		}
		if !(s.WriterKeysPerSec.Median > 0) {
			t.Errorf("%s: the writer wrote nothing", s.Name)
		}
	}
	why := res.system("whycache")
	if why == nil {
		t.Fatal("no whycache result")
	}
	for id, r := range why.Ratio {
		if r != 1 {
			t.Errorf("whycache's own %s ratio = %v, want 1", id, r)
		}
	}

	f, err := os.Open(filepath.Join(out, "results.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("results.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 300 {
		t.Errorf("chart is %v, want at least 800x300", b)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
		check   func(config) bool
	}{
		{"defaults", nil, "", func(c config) bool {
			return c.keys == 1<<20 && c.rounds == 5 && c.install && !c.skipMissing && len(c.systems) == len(peers.All())
		}},
		{"quick sets small defaults", []string{"--quick"}, "", func(c config) bool {
			return c.keys == quickKeys && c.duration == quickDuration && c.rounds == quickRounds
		}},
		{"quick keeps explicit settings", []string{"--quick", "--keys", "7", "--rounds", "3"}, "", func(c config) bool {
			return c.keys == 7 && c.rounds == 3 && c.duration == quickDuration
		}},
		{"system subset", []string{"--systems", "whycache,redis"}, "", func(c config) bool {
			return len(c.systems) == 2 && c.systems[1] == "redis"
		}},
		{"unknown system", []string{"--systems", "whycache,mongo"}, `unknown system "mongo"`, nil},
		{"whycache is required", []string{"--systems", "redis"}, "must include whycache", nil},
		{"duplicate system", []string{"--systems", "whycache,whycache"}, "listed twice", nil},
		{"zero keys", []string{"--keys", "0"}, "--keys 0 out of range", nil},
		{"zero rounds", []string{"--rounds", "0"}, "--rounds must be at least 1", nil},
		{"bad batch", []string{"--write-batch", "0"}, "--write-batch 0 out of range", nil},
		{"bad role", []string{"--role", "boss"}, `unknown --role "boss"`, nil},
		{"bad mode", []string{"--role", "child", "--system", "whycache", "--mode", "fly"}, `unknown --mode "fly"`, nil},
		{"extra argument", []string{"now"}, `unexpected argument "now"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(tc.args, new(bytes.Buffer))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if !tc.check(cfg) {
					t.Errorf("config %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestBadCommandLineExitsWith2(t *testing.T) {
	if _, stderr, code := runCommand(t, "--keys", "-1"); code != 2 || !strings.Contains(stderr, "--keys") {
		t.Errorf("exit %d, stderr %q; want 2 and a message about --keys", code, stderr)
	}
}
