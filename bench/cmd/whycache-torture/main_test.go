package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the command: the parent
// re-executes os.Executable (this binary) as its writers, which find
// childEnv set and run the command instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func runCommand(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	// Race-enabled children would each sleep a second at exit.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

var summaryRE = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`)

// checkRun checks a torture run's output: exit 0, every scenario in want
// ran and passed, and the last line is the summary with no failure.
func checkRun(t *testing.T, stdout, stderr string, code int, want ...string) {
	t.Helper()
	t.Logf("output:\n%s", stdout)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	m := summaryRE.FindStringSubmatch(stdout)
	if m == nil || !strings.HasSuffix(strings.TrimSpace(stdout), m[0]) {
		t.Fatalf("no final \"N passed, 0 failed\" line")
	}
	passed, _ := strconv.Atoi(m[1])
	if passed < len(want) || m[2] != "0" {
		t.Errorf("summary %q, want at least %d passed and 0 failed", m[0], len(want))
	}
	for _, name := range want {
		if !regexp.MustCompile(`(?m)^` + name + ` +#1 .*: ok$`).MatchString(stdout) {
			t.Errorf("no passing %s run", name)
		}
	}
	if strings.Contains(stdout, "FAILED") {
		t.Error("a run failed")
	}
}

// checkFaults checks that the faults run injected every kind of fault the
// store has.
func checkFaults(t *testing.T, stdout, store string) {
	t.Helper()
	line := regexp.MustCompile(`(?m)^faults +#1 .*$`).FindString(stdout)
	for _, k := range faultKinds {
		if k.fileOnly && store != storeFile {
			continue
		}
		if !regexp.MustCompile(`(\(|, )` + k.name + ` [1-9]`).MatchString(line) {
			t.Errorf("the faults run injected no %s fault", k.name)
		}
	}
}

// TestShortRunFileStore runs the file store scenarios for a few seconds:
// writers are killed and restarted, states converge, every operator fault
// is injected once, nothing is lost.
func TestShortRunFileStore(t *testing.T) {
	stdout, stderr, code := runCommand(t, "--for", "5s", "--slice", "2s", "--store", "file", "--dir", t.TempDir())
	checkRun(t, stdout, stderr, code, "crash", "convergence", "faults")
	if m := regexp.MustCompile(`crash +#1 .* (\d+) kills`).FindStringSubmatch(stdout); m == nil || m[1] == "0" {
		t.Errorf("the crash run killed nothing")
	}
	checkFaults(t, stdout, storeFile)
}

// TestShortRunMySQL runs the MySQL scenarios, the outage and the faults
// included, when WHYCACHE_TEST_DSN names a server.
func TestShortRunMySQL(t *testing.T) {
	dsn := os.Getenv("WHYCACHE_TEST_DSN")
	if dsn == "" {
		t.Skip("WHYCACHE_TEST_DSN is not set (e.g. 'root@tcp(127.0.0.1:3306)/test'); the MySQL scenarios are not run")
	}
	stdout, stderr, code := runCommand(t, "--for", "7s", "--slice", "2s", "--store", "mysql", "--dsn", dsn)
	checkRun(t, stdout, stderr, code, "crash", "convergence", "outage", "faults")
	checkFaults(t, stdout, storeMySQL)
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantErr   string
		wantSlice time.Duration
	}{
		{"default slice is a quarter", []string{"--for", "1m"}, "", 15 * time.Second},
		{"slice at least 2s", []string{"--for", "4s"}, "", 2 * time.Second},
		{"slice at most 30s", []string{"--for", "10m"}, "", 30 * time.Second},
		{"explicit slice", []string{"--for", "10m", "--slice", "5s"}, "", 5 * time.Second},
		{"unknown store", []string{"--store", "s3"}, "--store must be file or mysql", 0},
		{"mysql needs a DSN", []string{"--store", "mysql", "--dsn", ""}, "needs --dsn", 0},
		{"too short", []string{"--for", "10ms"}, "--for must be at least 1s", 0},
		{"writer needs a state", []string{"--role", "writer", "--log", "x"}, "needs --state", 0},
		{"writer needs one log", []string{"--role", "writer", "--state", "s"}, "one of --log or --table", 0},
		{"fault writer needs one log", []string{"--role", "fault-writer", "--state", "s", "--log", "x", "--table", "t"}, "one of --log or --table", 0},
		{"holder needs a state", []string{"--role", "holder"}, "a holder needs --state", 0},
		{"negative segment size", []string{"--segment-size", "-1"}, "--segment-size must not be negative", 0},
		{"some scenarios and faults", []string{"--for", "1m", "--scenarios", "faults,crash", "--faults", "restore,flipped-byte"}, "", 15 * time.Second},
		{"unknown scenario", []string{"--scenarios", "faults,chaos"}, `unknown scenario "chaos"`, 0},
		{"unknown fault", []string{"--faults", "restore,meteor"}, `unknown fault "meteor"`, 0},
		{"outage alone on files", []string{"--scenarios", "outage"}, "the outage scenario needs --store mysql", 0},
		{"lost manifest alone on MySQL", []string{"--store", "mysql", "--dsn", "x", "--faults", "lost-manifest"}, "the lost-manifest fault needs --store file", 0},
		{"unknown role", []string{"--role", "boss"}, `unknown --role "boss"`, 0},
		{"extra argument", []string{"now"}, `unexpected argument "now"`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.slice != tc.wantSlice {
				t.Errorf("slice %v, want %v", cfg.slice, tc.wantSlice)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	want := map[string][]byte{"a": []byte("1"), "b": {}, "c": []byte("3")}
	tests := []struct {
		name string
		got  map[string][]byte
		diff string // "" for equal
	}{
		{"equal, empty value included", map[string][]byte{"a": []byte("1"), "b": {}, "c": []byte("3")}, ""},
		{"missing key", map[string][]byte{"a": []byte("1"), "b": {}}, `"c" missing`},
		{"extra key", map[string][]byte{"a": []byte("1"), "b": {}, "c": []byte("3"), "d": nil}, `"d" should not exist`},
		{"different value", map[string][]byte{"a": []byte("1"), "b": {}, "c": []byte("x")}, `"c" is 1 bytes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := compare("state", tc.got, want)
			if tc.diff == "" {
				if err != nil {
					t.Errorf("error %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, errLost) || !strings.Contains(err.Error(), tc.diff) {
				t.Errorf("error %v, want errLost mentioning %s", err, tc.diff)
			}
		})
	}
}

// TestWriterThatCannotStartIsReported starts a writer whose log directory
// is a regular file: the parent must get its error, not hang.
func TestWriterThatCannotStartIsReported(t *testing.T) {
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	notADir := t.TempDir() + "/file"
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tt := &torture{cfg: config{}, exe: exe, rng: newRand(1)}
	_, err = tt.startWriter(context.Background(), t.TempDir()+"/s.state", logRef{dir: notADir + "/log"})
	if err == nil || !strings.Contains(err.Error(), "ended early") {
		t.Errorf("startWriter: %v, want an error about the writer ending early", err)
	}
}

// TestProxy checks that the proxy forwards, that a cut closes live
// connections and refuses new ones, and that restore lets them through.
func TestProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	px, err := newProxy(echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	roundTrip := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && line != "ping\n" {
			err = errors.New("echoed " + line)
		}
		return err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", px.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	live := dial()
	if err := roundTrip(live); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	px.cut()
	if err := roundTrip(live); err == nil {
		t.Error("a connection open across a cut still works")
	}
	if err := roundTrip(dial()); err == nil {
		t.Error("a connection made during a cut works")
	}
	px.restore()
	if err := roundTrip(dial()); err != nil {
		t.Errorf("after restore: %v", err)
	}
}
