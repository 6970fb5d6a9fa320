package prefixtree

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The multi-process tests re-execute the test binary: with helperEnv set,
// TestHelperProcess runs one role (writer, reader, crasher, ...) instead of
// the tests and exits. A helper prints its progress as lines on stdout,
// reports failures on stderr with exit status 1, and treats EOF on stdin as
// the request to stop, so helpers also end when the parent test dies.

// helperEnv names the environment variable that turns the test binary into
// a helper process; it holds the JSON-encoded helperArgs.
const helperEnv = "WHYCACHE_PREFIXTREE_HELPER"

// helperArgs tell a helper process what to do.
type helperArgs struct {
	Role string
	Path string
	// Work is the writer's workload (one), or the key spaces a reader
	// checks (all writers').
	Work []workload
	// From and To are the batches a writer commits, inclusive.
	From, To uint64
	// Seed varies what a reader reads.
	Seed uint64
}

// helperRoles maps a role name to its body, which gets the tree at
// a.Path. A role returns when it is done or stop is closed (stdin reached
// EOF).
var helperRoles = map[string]func(tr *Tree, a helperArgs, stop <-chan struct{}) error{
	"writer":     runWriterRole,
	"reader":     runReaderRole,
	"crasher":    runCrasherRole,
	"holder":     runHolderRole,
	"spinreader": runSpinReaderRole,
	"growreader": runGrowReaderRole,
}

// TestHelperProcess is the entry point of helper processes; it returns at
// once in a normal test run.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		return
	}
	var a helperArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		helperExit(fmt.Errorf("bad %s: %v", helperEnv, err))
	}
	role := helperRoles[a.Role]
	if role == nil {
		helperExit(fmt.Errorf("unknown role %q", a.Role))
	}
	tr, err := Open(a.Path, Options{NoCreate: true})
	if err != nil {
		helperExit(err)
	}
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	err = role(tr, a, stop)
	if cerr := tr.Close(); err == nil {
		err = cerr
	}
	helperExit(err)
}

// helperExit ends a helper process, reporting err on stderr.
func helperExit(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// say prints one progress line of a helper. os.Stdout is unbuffered, so the
// parent sees the line as soon as it is written.
func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// lineTimeout bounds the wait for a helper's next line, so that a helper
// that hangs fails the test instead of stalling it until the global timeout.
const lineTimeout = 2 * time.Minute

// child is a running helper process, seen from the parent. Its methods
// return errors rather than failing the test, so writer goroutines can use
// them; a child is killed at the end of the test if still running.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout lines; closed at EOF
	stderr bytes.Buffer

	mu     sync.Mutex // guards waited and werr
	waited bool
	werr   error
}

// startChild starts a helper process with the given role and arguments.
func startChild(t testing.TB, a helperArgs) *child {
	t.Helper()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	c := &child{name: a.Role, cmd: cmd, lines: make(chan string, 1<<16)}
	cmd.Stderr = &c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.name = fmt.Sprintf("%s helper (pid %d)", a.Role, cmd.Process.Pid)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// line returns the next line the child prints, or an error if it exits
// first or stays silent for lineTimeout.
func (c *child) line() (string, error) {
	select {
	case l, ok := <-c.lines:
		if ok {
			return l, nil
		}
		err := c.wait()
		return "", fmt.Errorf("%s exited before printing a line: %v", c.name, err)
	case <-time.After(lineTimeout):
		return "", fmt.Errorf("%s printed nothing for %v", c.name, lineTimeout)
	}
}

// expect reads the next line and checks that it starts with prefix; it
// returns the rest.
func (c *child) expect(prefix string) (string, error) {
	l, err := c.line()
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(l, prefix)
	if !ok {
		return "", fmt.Errorf("%s printed %q, want %q...", c.name, l, prefix)
	}
	return rest, nil
}

// drain returns the lines not read yet, up to EOF.
func (c *child) drain() []string {
	var out []string
	for l := range c.lines {
		out = append(out, l)
	}
	return out
}

// wait waits for the child to exit (after its stdout reached EOF) and
// returns its failure, with its stderr.
func (c *child) wait() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.waited {
		c.waited = true
		if err := c.cmd.Wait(); err != nil {
			c.werr = fmt.Errorf("%s: %v; stderr:\n%s", c.name, err, c.stderr.String())
		}
	}
	return c.werr
}

// finish asks the child to stop (EOF on stdin), waits for it and returns
// the lines it printed that were not read yet. A non-zero exit is an error.
func (c *child) finish() ([]string, error) {
	c.stdin.Close()
	lines := c.drain()
	return lines, c.wait()
}

// kill sends SIGKILL and returns the lines the child printed that were not
// read yet. Killing an exited child does nothing.
func (c *child) kill() []string {
	_ = c.cmd.Process.Kill()
	lines := c.drain()
	_ = c.wait()
	return lines
}

// runWriterRole commits batches From..To of the helper's workload.
func runWriterRole(tr *Tree, a helperArgs, stop <-chan struct{}) error {
	if err := a.Work[0].commitRange(tr, a.From, a.To); err != nil {
		return err
	}
	say("done")
	return nil
}

// runReaderRole verifies reads until stopped and prints its counts.
func runReaderRole(tr *Tree, a helperArgs, stop <-chan struct{}) error {
	st, err := verifyReader(tr, allKeys(a.Work), a.Seed, stop, func() { say("ready") })
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(st)
	say("stats %s", raw)
	return nil
}

// scenario is a run of concurrent writers and verifying readers on one
// file. Writer i writes Work[i]; the first GoWriters writers are
// goroutines, each with its own Tree handle, the others processes.
type scenario struct {
	Work        []workload
	GoWriters   int
	Batches     uint64
	GoReaders   int
	ProcReaders int
}

// runScenario runs sc: readers start first and report ready, then all
// writers run to completion, then the readers stop. Afterwards the file
// must equal the model of every writer's batches and pass Check. It
// returns the readers' counts (goroutines first).
func runScenario(t *testing.T, sc scenario) []readerStats {
	path := filepath.Join(t.TempDir(), "state")
	tr, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	keys := allKeys(sc.Work)

	stop := make(chan struct{})
	stats := make([]readerStats, sc.GoReaders+sc.ProcReaders)
	readerErrs := make(chan error, sc.GoReaders)
	for i := 0; i < sc.GoReaders; i++ {
		go func() {
			st, err := verifyReader(tr, keys, uint64(100+i), stop, nil)
			stats[i] = st
			readerErrs <- err
		}()
	}
	var readers []*child
	for i := 0; i < sc.ProcReaders; i++ {
		c := startChild(t, helperArgs{Role: "reader", Path: path, Work: sc.Work, Seed: uint64(200 + i)})
		readers = append(readers, c)
	}
	for _, c := range readers {
		if _, err := c.expect("ready"); err != nil {
			t.Fatal(err)
		}
	}

	writerErrs := make(chan error, len(sc.Work))
	for i, w := range sc.Work {
		if i < sc.GoWriters {
			go func() { writerErrs <- commitWithOwnHandle(path, w, sc.Batches) }()
			continue
		}
		c := startChild(t, helperArgs{Role: "writer", Path: path, Work: []workload{w}, From: 1, To: sc.Batches})
		go func() {
			_, err := c.expect("done")
			if err == nil {
				_, err = c.finish()
			}
			writerErrs <- err
		}()
	}
	for range sc.Work {
		if err := <-writerErrs; err != nil {
			t.Error(err)
		}
	}
	close(stop)
	for i := 0; i < sc.GoReaders; i++ {
		if err := <-readerErrs; err != nil {
			t.Errorf("reader goroutine: %v", err)
		}
	}
	for i, c := range readers {
		lines, err := c.finish()
		if err != nil {
			t.Fatal(err)
		}
		if err := parseJSONLine(lines, "stats ", &stats[sc.GoReaders+i]); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	m := newModel()
	for _, w := range sc.Work {
		for i := uint64(1); i <= sc.Batches; i++ {
			w.replay(m, i)
		}
		if got := tr.Meta(w.Writer); got != sc.Batches {
			t.Errorf("writer %d's batch counter is %d, want %d", w.Writer, got, sc.Batches)
		}
	}
	compareWithModel(t, tr, m)
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	return stats
}

// commitWithOwnHandle opens path separately (so that the writer lock is
// contended between Files too) and commits batches 1..batches of w.
func commitWithOwnHandle(path string, w workload, batches uint64) error {
	h, err := Open(path, Options{NoCreate: true})
	if err != nil {
		return err
	}
	defer h.Close()
	return w.commitRange(h, 1, batches)
}

// parseJSONLine decodes the JSON after prefix in the first line that
// starts with it.
func parseJSONLine(lines []string, prefix string, v any) error {
	for _, l := range lines {
		if raw, ok := strings.CutPrefix(l, prefix); ok {
			return json.Unmarshal([]byte(raw), v)
		}
	}
	return fmt.Errorf("no %q line in %q", prefix, lines)
}

// TestMultiProcess runs two writer processes with disjoint key sets and two
// verifying reader processes on one file.
func TestMultiProcess(t *testing.T) {
	work := []workload{
		{Seed: 11, Writer: 0, Keys: 400, MaxOps: 16, MaxValue: 2048, DeletePct: 20, PurgePct: 5},
		{Seed: 11, Writer: 1, Keys: 400, MaxOps: 16, MaxValue: 2048, DeletePct: 20, PurgePct: 5},
	}
	stats := runScenario(t, scenario{Work: work, Batches: 300, ProcReaders: 2})
	states := 0
	for i, st := range stats {
		t.Logf("reader process %d: %+v", i, st)
		states += st.States
	}
	// Each reader sees at least the state it started with; more than that
	// shows the reads overlapped the writes.
	if states <= len(stats) {
		t.Errorf("readers saw %d map states in all; they never overlapped a write", states)
	}
}
