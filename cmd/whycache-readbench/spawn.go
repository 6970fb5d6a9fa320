package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/whycache/whycache/internal/tailbuf"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is a reader or writer process started by the parent. Its methods
// are called from one goroutine.
type child struct {
	role   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	stderr *tailbuf.Buffer
}

// startChild re-executes exe as a child with the given role and flags. The
// child gets SIGKILL if the parent dies, and ctx's end kills it.
func startChild(ctx context.Context, exe, role string, flags []string) (*child, error) {
	args := append([]string{"--role", role}, flags...)
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	c := &child{role: role, cmd: cmd, stderr: &tailbuf.Buffer{}}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("whycache-readbench: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("whycache-readbench: %w", err)
	}
	c.out = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("whycache-readbench: start %s: %w", role, err)
	}
	return c, nil
}

// next reads the child's next message and checks that it is event.
func (c *child) next(event string) (message, error) {
	var m message
	if !c.out.Scan() {
		return m, c.failure(fmt.Sprintf("ended before %q", event))
	}
	if err := json.Unmarshal(c.out.Bytes(), &m); err != nil {
		return m, c.failure(fmt.Sprintf("sent %q (%v)", c.out.Text(), err))
	}
	if m.Event != event {
		return m, c.failure(fmt.Sprintf("sent %q, want %q", m.Event, event))
	}
	return m, nil
}

// tell writes one command line to the child.
func (c *child) tell(cmd string) error {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return c.failure(fmt.Sprintf("write %q: %v", cmd, err))
	}
	return nil
}

// failure describes a child that misbehaved, with its exit status and the
// end of its stderr, after making sure it has exited.
func (c *child) failure(what string) error {
	c.cmd.Process.Kill()
	werr := c.cmd.Wait()
	msg := strings.TrimSpace(c.stderr.String())
	return fmt.Errorf("whycache-readbench: %s process %d %s (exit: %v) %s", c.role, c.cmd.Process.Pid, what, werr, msg)
}

// finish closes the child's stdin and waits for it to exit successfully.
func (c *child) finish() error {
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("whycache-readbench: %s process %d: %w: %s", c.role, c.cmd.Process.Pid, err, strings.TrimSpace(c.stderr.String()))
	}
	return nil
}

// kill ends a child that is still running and reaps it; errors are
// ignored, this is cleanup after another failure.
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}
