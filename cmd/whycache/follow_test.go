package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/whycache/whycache/internal/redistest"
	"time"
)

// logRecord is one line of a follower's JSON log.
type logRecord struct {
	Time time.Time `json:"time"`
	Msg  string    `json:"msg"`
	URL  string    `json:"url"`
	Err  string    `json:"err"`

	Failures int `json:"failures"`
	Procs    int `json:"procs"`
}

// followerProc is a "whycache follow" subprocess.
type followerProc struct {
	cmd  *exec.Cmd
	logs chan logRecord // closed when stderr closes
	done chan error     // receives Wait's result
}

func startFollow(t *testing.T, c *cli, state string, interval time.Duration, extra ...string) *followerProc {
	t.Helper()
	return startFollowEnv(t, c, state, interval, nil, extra...)
}

// startFollowEnv is startFollow with env added to the follower's
// environment.
func startFollowEnv(t *testing.T, c *cli, state string, interval time.Duration, env []string, extra ...string) *followerProc {
	t.Helper()
	args := c.args(append([]string{"--state", state, "follow", "--interval", interval.String(),
		"--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"}, extra...))
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(cliEnv(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &followerProc{cmd: cmd, logs: make(chan logRecord, 1024), done: make(chan error, 1)}
	go func() {
		defer close(f.logs)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec logRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				rec = logRecord{Time: time.Now(), Msg: "NOT JSON: " + sc.Text()}
			}
			f.logs <- rec
		}
		io.Copy(io.Discard, stderr)
		f.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range f.logs {
		}
	})
	return f
}

// waitLog returns the first log record whose message contains msg.
func (f *followerProc) waitLog(t *testing.T, msg string) logRecord {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case rec, ok := <-f.logs:
			if !ok {
				t.Fatalf("follower exited before logging %q", msg)
			}
			if strings.HasPrefix(rec.Msg, "NOT JSON") {
				t.Fatalf("follower log line is not JSON: %s", rec.Msg)
			}
			if strings.Contains(rec.Msg, msg) {
				return rec
			}
		case <-timeout:
			t.Fatalf("follower did not log %q in 30s", msg)
		}
	}
}

// metricsOf fetches a metrics endpoint and returns each sample's value by
// series name (labels dropped; the follower's series have one label set).
func metricsOf(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)
	m := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		g := sample.FindStringSubmatch(line)
		if g == nil {
			continue
		}
		v, err := strconv.ParseFloat(g[3], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		m[g[1]] = v
	}
	return m
}

// followSeries are the series the follow daemon must export.
var followSeries = []string{
	"whycache_update_id", "whycache_latest_id", "whycache_lag_records", "whycache_lag_seconds",
	"whycache_applied_records_total", "whycache_keys", "whycache_data_bytes",
	"whycache_state_file_bytes", "whycache_state_rebuilds", "whycache_update_errors_total", "whycache_leader",
}

// waitMetric polls url until cond holds for the metrics.
func waitMetric(t *testing.T, url, what string, cond func(m map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := metricsOf(t, url)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in 30s; metrics %v", what, m)
		}
		time.Sleep(20 * time.Millisecond) // polling an HTTP endpoint: nothing to wait on
	}
}

func TestFollowTakeoverAndMetrics(t *testing.T) {
	forEachStore(t, func(t *testing.T, c *cli) {
		dir := t.TempDir()
		writer := filepath.Join(dir, "writer.state")
		state := filepath.Join(dir, "follow.state")
		c.ok("--state", writer, "update")
		var first struct{ ID uint64 }
		c.okJSON(&first, "--state", writer, "set", "k1", "v1")

		const interval = 200 * time.Millisecond
		a := startFollow(t, c, state, interval)
		urlA := a.waitLog(t, "serving metrics").URL
		a.waitLog(t, "leader")
		b := startFollow(t, c, state, interval)
		urlB := b.waitLog(t, "serving metrics").URL
		b.waitLog(t, "standby")

		mA := waitMetric(t, urlA, "leader applied the first record", func(m map[string]float64) bool {
			return m["whycache_update_id"] == float64(first.ID)
		})
		for _, name := range followSeries {
			if _, ok := mA[name]; !ok {
				t.Errorf("metrics of the leader lack %s", name)
			}
		}
		if mA["whycache_leader"] != 1 || mA["whycache_latest_id"] != float64(first.ID) || mA["whycache_keys"] != 1 ||
			mA["whycache_applied_records_total"] != 1 || mA["whycache_lag_records"] != 0 || mA["whycache_state_file_bytes"] <= 0 {
			t.Errorf("leader metrics: %v", mA)
		}
		mB := waitMetric(t, urlB, "standby reports the shared state", func(m map[string]float64) bool {
			return m["whycache_update_id"] == float64(first.ID)
		})
		if mB["whycache_leader"] != 0 || mB["whycache_applied_records_total"] != 0 || mB["whycache_keys"] != 1 {
			t.Errorf("standby metrics: %v", mB)
		}

		// Kill the leader; the standby takes over within two intervals.
		if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		took := b.waitLog(t, "leader").Time.Sub(killed)
		t.Logf("standby took over %v after SIGKILL of the leader (interval %v)", took, interval)
		if took > 2*interval {
			t.Errorf("standby took over %v after the leader was killed, want <= %v", took, 2*interval)
		}
		var second struct{ ID uint64 }
		c.okJSON(&second, "--state", writer, "set", "k2", "v2")
		mB = waitMetric(t, urlB, "new leader applied the second record", func(m map[string]float64) bool {
			return m["whycache_update_id"] == float64(second.ID)
		})
		if mB["whycache_leader"] != 1 || mB["whycache_keys"] != 2 || mB["whycache_applied_records_total"] < 1 || mB["whycache_latest_id"] != float64(second.ID) {
			t.Errorf("new leader metrics: %v", mB)
		}
		if got := c.ok("--state", state, "get", "k2"); got != "v2" {
			t.Errorf("get k2 from the followed state = %q", got)
		}

		// SIGTERM stops it cleanly.
		if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		b.waitLog(t, "stopping")
		for range b.logs {
		}
		if err := <-b.done; err != nil {
			t.Errorf("follower after SIGTERM: %v, want exit 0", err)
		}
	})
}

// TestFollowErrorsCounted runs a follower against an unreachable MySQL
// server and checks that the failed polls are logged and counted.
func TestFollowErrorsCounted(t *testing.T) {
	c := &cli{t: t, store: "mysql:user:secret@tcp(127.0.0.1:1)/db"}
	state := filepath.Join(t.TempDir(), "state")
	f := startFollow(t, c, state, 20*time.Millisecond)
	url := f.waitLog(t, "serving metrics").URL
	f.waitLog(t, "leader")
	rec := f.waitLog(t, "poll failed")
	if rec.Failures != 1 || !strings.Contains(rec.Err, "connect") || strings.Contains(rec.Err, "secret") {
		t.Errorf("first failure logged as %+v", rec)
	}
	m := waitMetric(t, url, "errors counted", func(m map[string]float64) bool {
		return m["whycache_update_errors_total"] >= 3
	})
	if m["whycache_leader"] != 1 || m["whycache_applied_records_total"] != 0 {
		t.Errorf("metrics after failed polls: %v", m)
	}
}

// TestFollowPutsBackRemovedState removes the state file under a running
// follower (as rm or systemd's RemoveIPC would): within a poll or two the
// follower puts it back, filled, so a new process reads it, and it goes on
// applying new records to it.
func TestFollowPutsBackRemovedState(t *testing.T) {
	c := fileCLI(t)
	state := filledState(c, t.TempDir(), 3)
	f := startFollow(t, c, state, 100*time.Millisecond)
	f.waitLog(t, "leader")
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !fileExists(state) {
		if time.Now().After(deadline) {
			t.Fatal("the follower did not put the removed state file back in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := c.content(state)
	if len(before) != 4 {
		t.Fatalf("the state put back lists %d keys, want 4", len(before))
	}
	other := filepath.Join(t.TempDir(), "other.state")
	c.ok("--state", other, "set", "after-removal", "v")
	for {
		if r := c.run("--state", state, "get", "after-removal"); r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower did not apply a new record to the state it put back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-f.done; err != nil {
		t.Fatalf("follower exit: %v", err)
	}
}

// TestFollowWakesOnNotify: with --notify, a set on one machine reaches
// another machine's follower (polling only every 30 s) within a second.
func TestFollowWakesOnNotify(t *testing.T) {
	addr := redistest.Start(t)
	c := fileCLI(t)
	dir := t.TempDir()
	follower := filepath.Join(dir, "follower.state")
	c.ok("--state", follower, "update")
	args := c.args([]string{"--notify", addr, "--state", follower, "follow", "--interval", "30s",
		"--log-format", "json", "--log-level", "debug"})
	cmd := exec.Command(binPath, args...)
	cmd.Env = cliEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(500 * time.Millisecond) // the follower subscribes
	writer := filepath.Join(dir, "writer.state")
	c.ok("--state", writer, "update")
	start := time.Now()
	c.ok("--notify", addr, "--state", writer, "set", "news", "fresh")
	for {
		if r := c.run("--state", follower, "get", "news"); r.code == 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the announced write did not reach the follower (interval 30 s) in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("propagated in %v", time.Since(start).Round(time.Millisecond))
}

// TestFollowProcs runs the follower on one core unless --procs says
// otherwise; --procs 0 keeps Go's default, here set by GOMAXPROCS.
func TestFollowProcs(t *testing.T) {
	c := fileCLI(t)
	for _, tc := range procsCases {
		t.Run(tc.name, func(t *testing.T) {
			f := startFollowEnv(t, c, filepath.Join(t.TempDir(), "s.state"), time.Second, tc.env, tc.args...)
			if rec := f.waitLog(t, "follow: starting"); rec.Procs != tc.want {
				t.Errorf("follow runs on %d cores, want %d", rec.Procs, tc.want)
			}
		})
	}
	if line := c.fails(exitUsage, "follow", "--procs", "-1"); !strings.Contains(line, "want 1 or more cores") {
		t.Errorf("follow --procs -1: %s", line)
	}
}
