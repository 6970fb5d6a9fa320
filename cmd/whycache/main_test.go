package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/whycache/whycache/internal/mariadbtest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

// binPath is the command under test, built once by TestMain (with -race
// when the tests run with -race).
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "whycache-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "whycache")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command(goTool(), append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := mariadbtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// goTool returns the go command of the toolchain running the tests.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// result is one run of the command.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the command with a fixed store and environment.
type cli struct {
	t     *testing.T
	store string // --store value
	table string // --table value ("" for the default)
	read  string // --read-store value ("" for none)
}

// env returns the environment of the command: the test's, without
// WHYCACHE_* variables, and race-enabled binaries not sleeping at exit.
func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WHYCACHE_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return append(env, "GORACE=atexit_sleep_ms=0 halt_on_error=1")
}

// args prepends the store flags.
func (c *cli) args(args []string) []string {
	var all []string
	if c.store != "" {
		all = append(all, "--store", c.store)
	}
	if c.table != "" {
		all = append(all, "--table", c.table)
	}
	if c.read != "" {
		all = append(all, "--read-store", c.read)
	}
	return append(all, args...)
}

// runIn runs the command with stdin and returns what it printed and its
// exit code.
func runIn(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cliEnv()
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %q: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// run runs the command with the store flags and no input.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	return runIn(c.t, nil, c.args(args)...)
}

// ok runs the command, fails the test unless it exits 0, and returns its
// stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	return c.okIn(nil, args...)
}

// okIn is ok with stdin.
func (c *cli) okIn(stdin []byte, args ...string) string {
	c.t.Helper()
	r := runIn(c.t, stdin, c.args(args)...)
	if r.code != 0 {
		c.t.Fatalf("whycache %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs the command with --json and decodes its stdout into v.
func (c *cli) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("whycache --json %s: output is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs the command and checks its exit code and that stderr is one
// "whycache: " line; it returns that line.
func (c *cli) fails(code int, args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	return checkFailure(c.t, r, code, args)
}

func checkFailure(t *testing.T, r result, code int, args []string) string {
	t.Helper()
	if r.code != code {
		t.Fatalf("whycache %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if !strings.HasPrefix(line, "whycache: ") || strings.Contains(line, "\n") {
		t.Fatalf("whycache %s: stderr is not one \"whycache: \" line:\n%s", strings.Join(args, " "), r.stderr)
	}
	return line
}

// listing is the --json output of ls --values.
type listing []struct {
	Key      string  `json:"key"`
	Value    *string `json:"value"`
	ValueB64 *string `json:"value_b64"`
}

// content returns a state's keys and values as ls --values --json lists
// them.
func (c *cli) content(state string) listing {
	c.t.Helper()
	var l listing
	c.okJSON(&l, "--state", state, "ls", "--values")
	return l
}

// sameContent fails the test unless two states list the same.
func (c *cli) sameContent(a, b string) {
	c.t.Helper()
	ca, cb := c.content(a), c.content(b)
	ja, _ := json.Marshal(ca)
	jb, _ := json.Marshal(cb)
	if !bytes.Equal(ja, jb) {
		c.t.Fatalf("states differ:\n%s: %s\n%s: %s", a, ja, b, jb)
	}
	if len(ca) == 0 {
		c.t.Fatalf("states %s and %s are both empty; the test wrote nothing", a, b)
	}
}

// storeCase is a log store the end-to-end tests run against.
type storeCase struct {
	name string
	new  func(t *testing.T) *cli // a fresh, initialized log
}

func storeCases() []storeCase {
	return []storeCase{
		{"file", func(t *testing.T) *cli { return fileCLI(t) }},
		{"mysql", func(t *testing.T) *cli {
			dsn := os.Getenv("WHYCACHE_TEST_DSN")
			if dsn == "" {
				t.Skip("set WHYCACHE_TEST_DSN=user:pass@tcp(host:3306)/db to run the MySQL tests")
			}
			c := &cli{t: t, store: "mysql:" + dsn, table: randomTable(t, dsn)}
			c.ok("init-schema")
			return c
		}},
	}
}

// fileCLI returns a cli on a fresh, initialized file store in a temporary
// directory.
func fileCLI(t *testing.T) *cli {
	c := &cli{t: t, store: "file:" + filepath.Join(t.TempDir(), "log")}
	c.ok("init-schema")
	return c
}

// forEachStore runs fn as a subtest on a fresh log of every store.
func forEachStore(t *testing.T, fn func(t *testing.T, c *cli)) {
	for _, sc := range storeCases() {
		t.Run(sc.name, func(t *testing.T) { fn(t, sc.new(t)) })
	}
}

// randomTable returns a new table name on the test server; its tables are
// dropped at cleanup.
func randomTable(t *testing.T, dsn string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	table := "wcli_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Errorf("drop %s: %v", table, err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP TABLE IF EXISTS `" + table + "`, `" + table + "_meta`, `" + table + "_marks`"); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
	})
	return table
}
