package whycache

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// The multi-process Instance tests run the test binary again as helper
// processes. A helper gets its role and parameters as JSON in one
// environment variable, talks to its parent with lines on stdout that
// start with "@" (other lines are the testing package's own output), and
// reads commands from stdin: a role that loops stops at EOF.
const instHelperEnv = "WHYCACHE_INST_HELPER"

// instHelperArgs configure one helper process.
type instHelperArgs struct {
	Role        string   // writer, reader, seqwriter, updater or crasher
	Dir         string   // file store directory; empty for MySQL
	DSN         string   // MySQL DSN, when Dir is empty
	Table       string   // MySQL table
	State       string   // state file path
	Writer      int      // writer number, the first field of the values written
	Seed        uint64   // seed of the helper's random choices
	Ops         int      // operations to run (writer, seqwriter)
	UpdateEvery int      // call Update every this many operations or passes; 0 never
	Base        int      // first counter (crasher)
	Keys        []string // the keys the role reads or writes
	MaxMulti    int      // most items of one SetMulti or DeleteMulti (writer, crasher)
	Threads     int      // goroutines writing at once (writer); 0 means 1
}

// instHelper is the running helper's side of the harness.
type instHelper struct {
	args  instHelperArgs
	c     *Instance
	outMu sync.Mutex // guards out
	out   *bufio.Writer
	cmds  <-chan string // stdin lines; closed at EOF
	ctx   context.Context
	store logstore.Store
}

// emit writes one protocol line for the parent and flushes it. It is safe
// for concurrent use.
func (h *instHelper) emit(format string, args ...any) {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	fmt.Fprintf(h.out, "@"+format+"\n", args...)
	h.out.Flush()
}

// stopped reports whether the parent closed stdin, and handles a pending
// command with fn (nil to ignore commands).
func (h *instHelper) stopped(fn func(cmd string)) bool {
	select {
	case cmd, ok := <-h.cmds:
		if !ok {
			return true
		}
		if fn != nil {
			fn(cmd)
		}
	default:
	}
	return false
}

// instRoles are the helper roles by name.
var instRoles = map[string]func(h *instHelper) error{
	"writer":    instRoleWriter,
	"reader":    instRoleReader,
	"seqwriter": instRoleSeqWriter,
	"updater":   instRoleUpdater,
	"crasher":   instRoleCrasher,
}

// openStore opens the helper's log store.
func (a instHelperArgs) openStore() (logstore.Store, error) {
	if a.Dir != "" {
		return NewFileStore(a.Dir)
	}
	db, err := sql.Open("mysql", a.DSN)
	if err != nil {
		return nil, err
	}
	s, err := NewMySQLStore(db, a.Table)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &instOwnedDBStore{MySQLStore: s, db: db}, nil
}

// instOwnedDBStore is a MySQLStore that closes its pool with it.
type instOwnedDBStore struct {
	*MySQLStore
	db *sql.DB
}

func (s *instOwnedDBStore) Close() error {
	return errors.Join(s.MySQLStore.Close(), s.db.Close())
}

// TestInstanceHelperProcess is the body of the helper processes; it does
// nothing in a normal run.
func TestInstanceHelperProcess(t *testing.T) {
	raw := os.Getenv(instHelperEnv)
	if raw == "" {
		t.Skip("runs only as a helper process")
	}
	var a instHelperArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	role := instRoles[a.Role]
	if role == nil {
		t.Fatalf("unknown helper role %q", a.Role)
	}
	store, err := a.openStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c, err := Open(store, Options{StatePath: a.State})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmds := make(chan string, 16)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	h := &instHelper{args: a, c: c, out: bufio.NewWriter(os.Stdout), cmds: cmds, ctx: context.Background(), store: store}
	if err := role(h); err != nil {
		t.Fatalf("%s %d: %v", a.Role, a.Writer, err)
	}
}

// instProc is a helper process seen from the parent.
type instProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	notify chan struct{} // gets a token when a protocol line arrives
	exited chan struct{} // closed once the process was waited for
	err    error         // the process's exit error; set before exited closes

	mu    sync.Mutex // guards the following
	lines []string   // protocol lines, without the "@"
	other []string   // other output lines (the last ones), for failure messages
}

// startInstProc starts a helper process; it is killed at cleanup if it
// still runs.
func startInstProc(t *testing.T, name string, a instHelperArgs) *instProc {
	t.Helper()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstanceHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), instHelperEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &instProc{name: name, cmd: cmd, stdin: stdin, notify: make(chan struct{}, 1), exited: make(chan struct{})}
	go p.readOutput(stdout)
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// readOutput collects the helper's stdout until EOF, then waits for it.
func (p *instProc) readOutput(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		if rest, ok := strings.CutPrefix(line, "@"); ok {
			p.lines = append(p.lines, rest)
		} else if p.other = append(p.other, line); len(p.other) > 40 {
			p.other = p.other[1:]
		}
		p.mu.Unlock()
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
	p.err = p.cmd.Wait()
	close(p.exited)
}

// count returns the number of protocol lines received so far.
func (p *instProc) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// protocol returns a copy of the protocol lines received so far.
func (p *instProc) protocol() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// await waits for a protocol line at index from or later with the given
// prefix and returns its index and text; ok is false if the process ended
// without printing one.
func (p *instProc) await(from int, prefix string) (int, string, bool) {
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if strings.HasPrefix(p.lines[i], prefix) {
				line := p.lines[i]
				p.mu.Unlock()
				return i, line, true
			}
		}
		from = max(from, len(p.lines))
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-p.exited:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if n == from {
				return 0, "", false
			}
		}
	}
}

// send writes a command line to the helper's stdin.
func (p *instProc) send(cmd string) error {
	_, err := io.WriteString(p.stdin, cmd+"\n")
	return err
}

// wait closes the helper's stdin (asking a looping role to stop), waits
// for it to exit and fails the test if it did not exit cleanly.
func (p *instProc) wait(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	<-p.exited
	if p.err != nil {
		t.Fatalf("helper %s: %v; output:\n%s", p.name, p.err, p.output())
	}
}

// kill sends SIGKILL and waits; it fails the test unless the signal is
// what ended the process.
func (p *instProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Kill()
	<-p.exited
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		t.Fatalf("helper %s was not killed: %v; output:\n%s", p.name, p.err, p.output())
	}
}

// output returns the helper's last non-protocol output lines.
func (p *instProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.other, "\n")
}

// instProcStore is a log store that helper processes can open too.
type instProcStore struct {
	name string
	// open returns a store on a fresh log and the helper arguments that
	// name it; both are cleaned up with the test.
	open func(t *testing.T) (logstore.Store, instHelperArgs)
	// replaces is true for stores that drop a single-key record when a
	// newer single-key record for the same key commits.
	replaces bool
}

// instProcStores are the stores of the multi-process tests: the file
// store, and MySQL when WHYCACHE_TEST_DSN is set (the subtest skips
// otherwise).
func instProcStores() []instProcStore {
	return []instProcStore{
		{name: "file", open: func(t *testing.T) (logstore.Store, instHelperArgs) {
			dir := filepath.Join(t.TempDir(), "log")
			s, err := NewFileStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s, instHelperArgs{Dir: dir}
		}},
		{name: "mysql", replaces: true, open: func(t *testing.T) (logstore.Store, instHelperArgs) {
			dsn := mysqlTestDSN(t)
			s, _ := mysqlTestStore(t, MySQLStoreOptions{})
			return s, instHelperArgs{DSN: dsn, Table: s.Table()}
		}},
	}
}
