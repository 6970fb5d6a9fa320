package prefixtree

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/statedir"
	"github.com/whycache/whycache/internal/statedir/statedirtest"
)

// sharedReaderEnv turns the test binary into a reader process that runs as
// another user (TestSharedReaderProcess); it holds the JSON-encoded
// sharedReaderArgs.
const sharedReaderEnv = "WHYCACHE_PREFIXTREE_SHARED_READER"

// sharedReaderArgs locate the state the reader reads.
type sharedReaderArgs struct {
	Dir, Name string
}

// sharedKey and sharedValue are the i-th key of the shared state and its
// value.
func sharedKey(i int) []byte   { return fmt.Appendf(nil, "k%d", i) }
func sharedValue(i int) []byte { return fmt.Appendf(nil, "value of k%d", i) }

// TestSharedReaderProcess is a reader with read permission only. It first
// tries a writable open and prints the error ("rw: ..."), then opens the
// state read-only and prints "open ok", then answers commands on stdin,
// one line each:
//
//	check N     verify keys 0..N-1: "ok" or "bad ..."
//	get KEY     "value V", "notfound" or "error MSG"
//	begin       start a batch: "error MSG" (it must fail)
//	bench N     N random Gets of the first 1000 keys: "ns X" per Get
//
// It exits at EOF on stdin. It returns at once in a normal test run.
func TestSharedReaderProcess(t *testing.T) {
	raw := os.Getenv(sharedReaderEnv)
	if raw == "" {
		return
	}
	var a sharedReaderArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		helperExit(err)
	}
	d, err := statedir.Open(a.Dir, statedir.Options{})
	if err != nil {
		helperExit(err)
	}
	if tr, err := OpenIn(d, a.Name, Options{NoCreate: true}); err == nil {
		tr.Close()
		say("rw: opened")
	} else {
		say("rw: %v", err)
	}
	tr, err := OpenIn(d, a.Name, Options{ReadOnly: true, ReadTimeout: 200 * time.Millisecond})
	if err != nil {
		helperExit(err)
	}
	d.Close()
	say("open ok")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "check":
			n, _ := strconv.Atoi(arg)
			say("%s", checkShared(tr, n))
		case "get":
			v, found, err := tr.AppendGet(nil, []byte(arg))
			switch {
			case err != nil:
				say("error %v", err)
			case !found:
				say("notfound")
			default:
				say("value %s", v)
			}
		case "begin":
			if b, err := tr.Begin(); err != nil {
				say("error %v", err)
			} else {
				b.Rollback()
				say("began")
			}
		case "bench":
			n, _ := strconv.Atoi(arg)
			say("ns %.1f", benchShared(tr, n))
		default:
			say("unknown command %q", cmd)
		}
	}
	helperExit(tr.Close())
}

// checkShared verifies keys 0..n-1 of the shared state.
func checkShared(tr *Tree, n int) string {
	for i := 0; i < n; i++ {
		v, err := tr.Get(sharedKey(i))
		if err != nil || string(v) != string(sharedValue(i)) {
			return fmt.Sprintf("bad %s: %q, %v", sharedKey(i), v, err)
		}
	}
	return "ok"
}

// benchShared returns the mean time of n Gets of random keys among the
// first 1000, for the log (not a test condition: timing belongs to the
// benchmarks, such as BenchmarkGetHot1KReadOnly).
func benchShared(tr *Tree, n int) float64 {
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = sharedKey(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 64)
	start := time.Now()
	for i := 0; i < n; i++ {
		buf, _, _ = tr.AppendGet(buf[:0], keys[r.IntN(len(keys))])
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// sharedReader is a reader process running as the test user.
type sharedReader struct {
	in    io.WriteCloser
	lines *bufio.Scanner
}

func (r *sharedReader) line(t *testing.T) string {
	t.Helper()
	if !r.lines.Scan() {
		t.Fatalf("the reader process ended: %v", r.lines.Err())
	}
	return r.lines.Text()
}

// ask sends one command and returns the answer.
func (r *sharedReader) ask(t *testing.T, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(r.in, cmd); err != nil {
		t.Fatal(err)
	}
	return r.line(t)
}

// TestReadOnlyUserReadsOwnersState: a state maintained by root (directory
// 0750, file 0640, group of the test user) is read by a process of the
// test user, who has read permission only: a writable open fails (as every
// open of the state did before read-only opens existed), the read-only
// open reads every key and cannot begin a batch, creates no file, and
// reports a stopped writer by pid; after the writer resumes and commits,
// the reader sees its batch.
func TestReadOnlyUserReadsOwnersState(t *testing.T) {
	u := statedirtest.NeedUser(t)
	public := statedirtest.PublicDir(t)
	binary := statedirtest.Binary(t, public)
	dir := filepath.Join(public, "state")
	d, err := statedir.Open(dir, statedir.Options{Create: true, DirMode: 0o750})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tr, err := OpenIn(d, "default.state", Options{FileMode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, p := range []string{dir, d.Join("default.state")} {
		if err := os.Chown(p, 0, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	const keys = 5000
	b, err := tr.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < keys; i++ {
		if _, err := b.Put(sharedKey(i), sharedValue(i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}

	raw, _ := json.Marshal(sharedReaderArgs{Dir: dir, Name: "default.state"})
	cmd := u.Command(binary, public, "-test.run=^TestSharedReaderProcess$")
	cmd.Env = append(os.Environ(), sharedReaderEnv+"="+string(raw))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := &sharedReader{in: in, lines: bufio.NewScanner(out)}

	if l := r.line(t); !strings.Contains(l, "permission denied") {
		t.Fatalf("the test user's writable open: %s (stderr: %s)", l, stderr.String())
	}
	if l := r.line(t); l != "open ok" {
		t.Fatalf("the test user's read-only open: %s (stderr: %s)", l, stderr.String())
	}
	if l := r.ask(t, fmt.Sprintf("check %d", keys)); l != "ok" {
		t.Fatalf("read-only reads: %s", l)
	}
	if l := r.ask(t, "begin"); !strings.Contains(l, "read-only") {
		t.Fatalf("a batch of the read-only reader: %s", l)
	}
	if l := r.ask(t, "bench 1000000"); strings.HasPrefix(l, "ns ") {
		t.Logf("Get as the read-only user: %s ns; as the owner: %.1f ns (for information; see BenchmarkGetHot1KReadOnly)", l[3:], benchShared(tr, 1000000))
	}

	w := startChild(t, helperArgs{Role: "stopper", Path: d.Join("default.state")})
	if _, err := w.expect("writing"); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, w)
	pid := w.cmd.Process.Pid
	l := r.ask(t, "get k1")
	if !strings.HasPrefix(l, "error ") || !strings.Contains(l, "writer stuck") || !strings.Contains(l, fmt.Sprintf("pid %d", pid)) || !strings.Contains(l, "stopped") {
		t.Fatalf("the read-only reader facing the stopped writer %d: %s", pid, l)
	}
	t.Logf("read-only reader: %s", l)
	if err := w.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, err := w.expect("committed"); err != nil {
		t.Fatal(err)
	}
	if l := r.ask(t, "get stopped/3"); l != "value v" {
		t.Fatalf("the read-only reader after the commit: %s", l)
	}
	if _, err := w.finish(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("reader: %v; stderr: %s", err, stderr.String())
	}
	names, err := d.Names()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "default.state" {
		t.Errorf("the state directory holds %q: the reader created files", names)
	}
}
