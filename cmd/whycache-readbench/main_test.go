package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// tinyArgs are the settings of the end-to-end tests.
var tinyArgs = []string{"--keys", "2000", "--duration", "200ms", "--rounds", "1", "--write-rate", "2000"}

func runCommand(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// TestCommandEndToEnd runs the whole command with tiny settings, first
// building a state and printing JSON, then reusing the state and printing
// the table, and checks that every scenario read (and wrote) something.
func TestCommandEndToEnd(t *testing.T) {
	// Race-enabled children would each sleep a second at exit.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	state := filepath.Join(t.TempDir(), "state")
	out, errOut, code := runCommand(t, append([]string{"--json", "--state", state}, tinyArgs...)...)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, out)
	}
	if rep.State.Reused || rep.State.Keys != 2000 || rep.State.Path != state {
		t.Errorf("state = %+v, want a new state of 2000 keys at %s", rep.State, state)
	}
	if len(rep.Scenarios) != len(scenarios) {
		t.Fatalf("%d scenarios, want %d", len(rep.Scenarios), len(scenarios))
	}
	for i, sc := range rep.Scenarios {
		if sc.scenario != scenarios[i] {
			t.Errorf("scenario %d = %+v, want %+v", i, sc.scenario, scenarios[i])
		}
		if len(sc.Runs) != 1 {
			t.Fatalf("%s: %d runs, want 1", sc.Name, len(sc.Runs))
		}
		r := sc.Runs[0]
		if len(r.ReaderReads) != sc.Readers {
			t.Errorf("%s: %d reader reports, want %d", sc.Name, len(r.ReaderReads), sc.Readers)
		}
		for j, n := range r.ReaderReads {
			if n == 0 {
				t.Errorf("%s: reader %d read nothing", sc.Name, j)
			}
		}
		for _, per := range [][]float64{r.ReaderCPU, r.ReaderRun, r.ReaderRunq, r.ReaderAsleep} {
			if len(per) != sc.Readers {
				t.Errorf("%s: %d per-reader CPU figures, want %d", sc.Name, len(per), sc.Readers)
			}
		}
		if sc.ReadsPerSec.Min <= 0 {
			t.Errorf("%s: reads/s %v", sc.Name, sc.ReadsPerSec.Min)
		}
		if sc.Writer != (sc.WritesPerSec != nil) {
			t.Errorf("%s: writer %v but writes/s %v", sc.Name, sc.Writer, sc.WritesPerSec)
		}
		if sc.Writer && r.WritesPerSec <= 0 {
			t.Errorf("%s: the writer wrote nothing", sc.Name)
		}
	}
	if len(rep.Ratios) != 5 {
		t.Fatalf("%d ratios, want 5", len(rep.Ratios))
	}
	for _, r := range rep.Ratios {
		if r.Value <= 0 || len(r.PerRound) != 1 || math.IsInf(r.Value, 0) || math.IsNaN(r.Value) {
			t.Errorf("ratio %s = %v per round %v", r.Name, r.Value, r.PerRound)
		}
	}

	out, errOut, code = runCommand(t, append([]string{"--state", state}, tinyArgs...)...)
	if code != 0 {
		t.Fatalf("reuse: exit %d, stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"reused", "2 readers / 1 reader", "1 reader under writes / idle", "2 readers under writes / idle"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, sc := range scenarios {
		if !strings.Contains(out, sc.Name+" ") {
			t.Errorf("table lacks scenario %q:\n%s", sc.Name, out)
		}
	}
	if n := strings.Count(out, "PASS") + strings.Count(out, "MISS"); n != 3 {
		t.Errorf("table has %d verdicts, want 3:\n%s", n, out)
	}
	if n := strings.Count(out, "diagnostic\n"); n != 2 {
		t.Errorf("table has %d diagnostic ratios, want 2:\n%s", n, out)
	}

	// The state holds 2000 keys: a run that expects another count refuses
	// it before starting any child.
	_, errOut, code = runCommand(t, "--state", state, "--keys", "1000", "--duration", "1ms", "--rounds", "1")
	if code != 1 || !strings.Contains(errOut, "not a whycache-readbench state of 1000 keys") {
		t.Errorf("reuse with other --keys: exit %d, stderr %q", code, errOut)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--keys", "0"},
		{"--duration", "0s"},
		{"--rounds", "0"},
		{"--write-rate", "0"},
		{"--write-batch", "0"},
		{"--role", "bystander"},
		{"--role", "reader"}, // without --state
		{"extra"},
		{"--no-such-flag"},
	} {
		if _, _, code := runCommand(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in            []float64
		min, med, max float64
	}{
		{[]float64{5}, 5, 5, 5},
		{[]float64{3, 1, 2}, 1, 2, 3},
		{[]float64{4, 1, 3, 2}, 1, 2.5, 4},
	} {
		s := summarize(tc.in)
		if s.Min != tc.min || s.Median != tc.med || s.Max != tc.max {
			t.Errorf("summarize(%v) = %+v, want min %v median %v max %v", tc.in, s, tc.min, tc.med, tc.max)
		}
	}
}

// TestRatio checks the ratio of medians, the per-round ratios and the
// verdicts against the targets.
func TestRatio(t *testing.T) {
	runs := func(v ...float64) scenarioReport {
		var sr scenarioReport
		for _, x := range v {
			sr.Runs = append(sr.Runs, runResult{ReadsPerSec: x, ReadsPerCPUSec: x / 2})
		}
		return sr
	}
	for _, tc := range []struct {
		name        string
		num, den    scenarioReport
		must, aim   float64
		judged      bool
		value       float64
		perRound    []float64
		wantVerdict string
	}{
		{"aim met", runs(19, 21, 20), runs(10, 10, 10), 1.8, 1.95, true, 2, []float64{1.9, 2.1, 2}, "PASS, aim met"},
		{"pass", runs(18.5, 18.5), runs(10, 10), 1.8, 1.95, true, 1.85, []float64{1.85, 1.85}, "PASS"},
		{"miss", runs(12, 14, 13), runs(10, 20, 10), 1.8, 1.95, true, 1.3, []float64{1.2, 0.7, 1.3}, "MISS"},
		{"not judged", runs(9), runs(10), 0.8, 0.95, false, 0.9, []float64{0.9}, "PASS (not judged)"},
		{"diagnostic", runs(9), runs(10), 0, 0, true, 0.9, []float64{0.9}, "diagnostic"},
		{"zero denominator", runs(9), runs(0), 0.8, 0.95, true, 0, []float64{0}, "MISS"},
	} {
		r := newRatio(tc.name, tc.num, tc.den, readsPerSec, tc.must, tc.aim, tc.judged)
		if !near(r.Value, tc.value) || len(r.PerRound) != len(tc.perRound) {
			t.Errorf("%s: value %v per round %v, want %v %v", tc.name, r.Value, r.PerRound, tc.value, tc.perRound)
			continue
		}
		for i := range r.PerRound {
			if !near(r.PerRound[i], tc.perRound[i]) {
				t.Errorf("%s: per round %v, want %v", tc.name, r.PerRound, tc.perRound)
			}
		}
		if got := r.verdict(); got != tc.wantVerdict {
			t.Errorf("%s: verdict %q, want %q", tc.name, got, tc.wantVerdict)
		}
		if cpu := newRatio(tc.name, tc.num, tc.den, readsPerCPUSec, tc.must, tc.aim, tc.judged); !near(cpu.Value, tc.value) {
			t.Errorf("%s: per-CPU value %v, want %v", tc.name, cpu.Value, tc.value)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestWorkloadKeys checks that keys are deterministic, that a smaller
// workload is a prefix of a larger one (so a state's keys depend only on
// their count), and that no two of them are equal.
func TestWorkloadKeys(t *testing.T) {
	a, b := workloadKeys(1000), workloadKeys(3000)
	if !bytes.Equal(a, b[:len(a)]) {
		t.Fatal("workloadKeys(1000) is not a prefix of workloadKeys(3000)")
	}
	seen := map[string]bool{}
	for i := range uint64(3000) {
		k := string(key(b, i))
		if seen[k] {
			t.Fatalf("key %d repeats", i)
		}
		seen[k] = true
	}
}
