// Package testproc runs the test binary again as a helper process, for
// tests that need real processes: writers in several processes, a writer
// killed in the middle of a commit, a lock held by another process.
//
// A helper is a test function that does nothing in a normal run. Start
// runs the test binary with only that test selected and one argument in
// the environment; the helper reads it with Arg (which skips the test in a
// normal run) and talks to its parent with lines on stdout, and may read
// commands from stdin.
//
//	func TestHelperHold(t *testing.T) {
//		path := testproc.Arg(t) // skips unless run by Start
//		...
//		fmt.Println("locked")
//	}
//
//	p := testproc.Start(t, "holder", "TestHelperHold", path)
//	if _, _, ok := p.Await(0, testproc.Is("locked")); !ok { ... }
//
// A Proc collects every stdout line as it arrives, whether or not the test
// reads them, so a helper never blocks on a full pipe; stderr goes to the
// test binary's stderr. A helper still running when its test ends is
// killed and waited for.
package testproc

import (
	"bufio"
	"io"
	"iter"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// argEnv is the environment variable that carries a helper's argument.
const argEnv = "WHYCACHE_TESTPROC_ARG"

// Arg returns the argument Start gave this helper process. In a normal
// run (not started by Start) it skips the calling test.
func Arg(t testing.TB) string {
	t.Helper()
	arg, ok := os.LookupEnv(argEnv)
	if !ok {
		t.Skip("runs only as a helper process")
	}
	return arg
}

// Proc is a helper process seen from its parent. Its methods are safe for
// concurrent use.
type Proc struct {
	Name string    // for messages
	Cmd  *exec.Cmd // the process; do not Wait on it (Proc does)

	stdin  io.WriteCloser
	exited chan struct{} // closed once the output is read and the process waited for
	err    error         // the exit error of Cmd.Wait; set before exited closes

	mu      sync.Mutex    // guards lines and arrived
	lines   []string      // every stdout line so far
	arrived chan struct{} // closed (and replaced) when a line arrives
}

// Start runs the test binary again with only the test named test
// selected, arg in its environment (see Arg) and the name name for
// messages. The process is killed at the end of t if it still runs.
func Start(t testing.TB, name, test, arg string) *Proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), argEnv+"="+arg)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, stdin: stdin, exited: make(chan struct{}), arrived: make(chan struct{})}
	go p.read(stdout)
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// read collects the helper's stdout until EOF, then waits for the process.
func (p *Proc) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.arrived)
		p.arrived = make(chan struct{})
		p.mu.Unlock()
	}
	p.err = p.Cmd.Wait()
	close(p.exited)
}

// Len returns the number of stdout lines received so far.
func (p *Proc) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// Output returns a copy of the stdout lines received so far.
func (p *Proc) Output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Is returns a match for Await that accepts line exactly.
func Is(line string) func(string) bool {
	return func(s string) bool { return s == line }
}

// HasPrefix returns a match for Await that accepts lines starting with
// prefix.
func HasPrefix(prefix string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, prefix) }
}

// Await waits for a stdout line at index from or later that match
// accepts (any line when match is nil) and returns its index and text; ok
// is false when the process ended without printing one.
func (p *Proc) Await(from int, match func(string) bool) (i int, line string, ok bool) {
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match == nil || match(p.lines[i]) {
				line := p.lines[i]
				p.mu.Unlock()
				return i, line, true
			}
		}
		from = max(from, len(p.lines))
		arrived := p.arrived
		p.mu.Unlock()
		select {
		case <-arrived:
		case <-p.exited:
			if p.Len() == from {
				return 0, "", false
			}
		}
	}
}

// Lines returns an iterator over every stdout line in order, waiting for
// each, until the process's output ends.
func (p *Proc) Lines() iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := 0; ; i++ {
			_, line, ok := p.Await(i, nil)
			if !ok || !yield(line) {
				return
			}
		}
	}
}

// Send writes a command line to the helper's stdin.
func (p *Proc) Send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// CloseStdin closes the helper's stdin (a helper that reads commands stops
// at EOF).
func (p *Proc) CloseStdin() error { return p.stdin.Close() }

// Exited returns a channel closed once the process exited and its output
// was read.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Wait waits until the process exited and its output was read, and
// returns its exit error (nil for a clean exit).
func (p *Proc) Wait() error {
	<-p.exited
	return p.err
}

// Signal sends sig to the process without waiting for it.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Signaled reports whether a signal ended the process; it waits for the
// process to exit.
func (p *Proc) Signaled() bool {
	<-p.exited
	ws, ok := p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// Kill sends SIGKILL, waits for the process and fails the test unless the
// signal is what ended it.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	p.Cmd.Process.Kill()
	if !p.Signaled() {
		t.Fatalf("helper %s was not killed: %v; output:\n%s", p.Name, p.err, p.Tail(40))
	}
}

// Tail returns the last n stdout lines, for failure messages.
func (p *Proc) Tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(0, len(p.lines)-n):], "\n")
}
