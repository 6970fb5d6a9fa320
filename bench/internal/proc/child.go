// Package proc runs the benchmark's and the torture test's child processes:
// a parent re-executes its own binary with a role, and the two talk in
// JSON lines, the parent over the child's stdin and the child over its
// stdout. A child's stderr is kept (its last 4 KiB) for error messages.
//
// Children get SIGKILL when the thread that started them dies (Pdeathsig)
// and when the context given to Start ends, so none outlives its parent.
package proc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/whycache/whycache/internal/tailbuf"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrChild is wrapped by every error about a child that misbehaved: it
// exited early, sent something unexpected, or timed out.
var ErrChild = errors.New("proc: child process failed")

// DefaultTimeout is how long Recv waits for a line when Child.Timeout is 0.
const DefaultTimeout = 2 * time.Minute

// Child is a child process started by Start. Its methods are meant to be
// called from one goroutine.
type Child struct {
	// Name identifies the child in error messages.
	Name string
	// Timeout bounds each Recv; 0 means DefaultTimeout.
	Timeout time.Duration

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *os.File
	out    *bufio.Scanner
	stderr *tailbuf.Buffer
}

// Start runs exe with args and extra environment variables (appended to
// this process's environment). ctx's end kills the child.
func Start(ctx context.Context, name, exe string, args, env []string) (*Child, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	c := &Child{Name: name, cmd: cmd, stderr: &tailbuf.Buffer{}}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("proc: %s: %w", name, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("proc: %s: %w", name, err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("proc: start %s: %w", name, err)
	}
	w.Close()
	c.stdout = r
	c.out = bufio.NewScanner(r)
	c.out.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return c, nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Send writes v as one JSON line to the child's stdin.
func (c *Child) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("proc: %w", err)
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		return c.failure(fmt.Sprintf("did not take a message (%v)", err))
	}
	return nil
}

// Recv reads the child's next JSON line into v. If the child ends, sends
// something that is not JSON, or sends nothing within the timeout, the
// child is killed and the error (wrapping ErrChild) carries its exit
// status and the end of its stderr.
func (c *Child) Recv(v any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c.stdout.SetReadDeadline(time.Now().Add(timeout))
	if !c.out.Scan() {
		if err := c.out.Err(); errors.Is(err, os.ErrDeadlineExceeded) {
			return c.failure(fmt.Sprintf("sent nothing for %v", timeout))
		}
		return c.failure("ended early")
	}
	if err := json.Unmarshal(c.out.Bytes(), v); err != nil {
		return c.failure(fmt.Sprintf("sent %.200q (%v)", c.out.Text(), err))
	}
	return nil
}

// Finish closes the child's stdin (the signal to end) and waits for it to
// exit; an exit status other than 0 is an error wrapping ErrChild.
func (c *Child) Finish() error {
	c.stdin.Close()
	err := c.cmd.Wait()
	c.stdout.Close()
	if err != nil {
		return fmt.Errorf("%w: %s (pid %d): %v: %s", ErrChild, c.Name, c.Pid(), err, c.Stderr())
	}
	return nil
}

// Kill sends SIGKILL to a child that has not been waited for, and reaps
// it. It returns once the child is gone.
func (c *Child) Kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.stdout.Close()
}

// Stderr returns the end of what the child wrote to its stderr, trimmed.
func (c *Child) Stderr() string { return strings.TrimSpace(c.stderr.String()) }

// failure kills the child and describes what went wrong.
func (c *Child) failure(what string) error {
	c.Kill()
	return fmt.Errorf("%w: %s (pid %d) %s (exit: %v): %s", ErrChild, c.Name, c.Pid(), what, c.cmd.ProcessState, c.Stderr())
}
