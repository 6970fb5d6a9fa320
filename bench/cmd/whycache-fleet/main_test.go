package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFleetShort runs the benchmark as CI can afford it (5 followers for
// 3 s on WHYCACHE_TEST_DSN's server) and checks that the report is sane:
// every follower was seen holding every measured write, statements were
// counted, CPU and memory were read, and every state passed the check.
func TestFleetShort(t *testing.T) {
	dsn := os.Getenv("WHYCACHE_TEST_DSN")
	if dsn == "" {
		t.Skip("WHYCACHE_TEST_DSN is unset: set it to a MySQL DSN, e.g. root@tcp(127.0.0.1:3306)/test")
	}
	cfg := config{
		followers: 5, interval: 100 * time.Millisecond, rate: 100,
		duration: 3 * time.Second, warmup: 500 * time.Millisecond,
		baseline: time.Second, dsn: dsn, tick: time.Millisecond, command: "test",
	}
	r, err := run(context.Background(), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r.writeTable(&out)
	t.Log(out.String())
	if len(r.Failures) > 0 {
		t.Fatalf("failures: %q", r.Failures)
	}
	p := r.Propagation
	if r.Writes < 100 || p.FollowersSeen != cfg.followers || p.Missing != 0 || p.Samples != r.Writes*cfg.followers {
		t.Errorf("propagation: %d writes, %d samples, %d followers seen, %d missing; want every write seen by each of %d followers", r.Writes, p.Samples, p.FollowersSeen, p.Missing, cfg.followers)
	}
	if p.P50ms <= 0 || p.P50ms > p.P99ms || p.P99ms > p.MaxMs {
		t.Errorf("propagation p50 %.1f, p99 %.1f, max %.1f ms: not ordered", p.P50ms, p.P99ms, p.MaxMs)
	}
	if r.Statements["Questions"] <= 0 || r.PerFollowerPerSecond <= 0 || r.PerPoll <= 0 {
		t.Errorf("statements %v, %.2f per follower per second, %.2f per poll: want counted", r.Statements, r.PerFollowerPerSecond, r.PerPoll)
	}
	if r.WriterAlone == nil || r.WriterAlone.Statements["shared"]["Com_insert"]+r.WriterAlone.Statements["shared"]["Com_update"] <= 0 {
		t.Errorf("writer alone: %+v; want its commits counted", r.WriterAlone)
	}
	if r.Idle == nil || r.IdlePerPoll <= 0 {
		t.Errorf("followers idle: %+v, %.2f statements per poll; want counted", r.Idle, r.IdlePerPoll)
	}
	if r.FollowerCPUSum <= 0 || r.RSSMeanMiB <= 0 || r.RSSMaxMiB < r.RSSMeanMiB {
		t.Errorf("follower CPU %.2f%%, RSS mean %.1f max %.1f MiB: want measured", r.FollowerCPUSum, r.RSSMeanMiB, r.RSSMaxMiB)
	}
	if r.StatesVerified != cfg.followers || r.KeysChecked <= r.Writes {
		t.Errorf("%d states verified with %d keys: want %d states, more keys than the %d measured writes", r.StatesVerified, r.KeysChecked, cfg.followers, r.Writes)
	}
}

// fakeCLI writes a script that prints help text for the flag check.
func fakeCLI(t *testing.T, help string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "whycache")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\ncat <<'EOF'\n"+help+"\nEOF\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestReplicaNeedsReadStore: with -replica, a whycache binary without the
// global --read-store flag stops the run at once with a message saying so,
// before any server is started.
func TestReplicaNeedsReadStore(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	cfg := config{
		followers: 1, interval: 100 * time.Millisecond, rate: 1, duration: time.Second,
		replica: true, tick: time.Millisecond,
		bin: fakeCLI(t, "  --store file:DIR      the change log\n  --notify HOST:PORT    announce commits"),
	}
	_, err := run(context.Background(), cfg, t.Logf)
	if err == nil || !strings.Contains(err.Error(), "no global flag --read-store") {
		t.Fatalf("run = %v; want the missing --read-store error", err)
	}
}

func TestSupportsFlag(t *testing.T) {
	bin := fakeCLI(t, "  --read-store mysql:DSN  read the log from a replica\n  --store file:DIR  the log\n  --notify-channel channel")
	for _, tc := range []struct {
		flag string
		want bool
	}{
		{"read-store", true},
		{"store", true},
		{"notify", false}, // only --notify-channel is listed
		{"replica", false},
	} {
		got, err := supportsFlag(context.Background(), bin, tc.flag)
		if err != nil || got != tc.want {
			t.Errorf("supportsFlag(%q) = %v, %v; want %v", tc.flag, got, err, tc.want)
		}
	}
}
