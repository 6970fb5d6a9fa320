package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// demoChildTimeout bounds how long a demo child waits for the value.
const demoChildTimeout = 20 * time.Second

// demoChildCommand is the hidden command the demo runs in its child
// processes. Its protocol, one line each on stdout:
//
//	wait KEY VALUE: "ready", then "seen UNIXNANO GETS" once Get(KEY) = VALUE
//	set KEY VALUE:  "set ID START_UNIXNANO END_UNIXNANO" after Set
func demoChildCommand() *command {
	return &command{
		name:    "demo-child",
		args:    "wait|set KEY VALUE",
		summary: "internal: a process of the demo",
		hidden:  true,
		minArgs: 3, maxArgs: 3,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, args []string) error { return e.demoChild(args[0], args[1], args[2]) }
		},
	}
}

func (e *env) demoChild(role, key, value string) error {
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	switch role {
	case "set":
		start := time.Now()
		id, err := s.inst.Set(e.ctx, []byte(key), []byte(value))
		end := time.Now()
		if err != nil {
			return wrap(err, "demo-child")
		}
		e.printf("set %d %d %d\n", id, start.UnixNano(), end.UnixNano())
		return nil
	case "wait":
		runtime.GOMAXPROCS(1)
		want := []byte(value)
		buf := make([]byte, 0, len(want)+64)
		deadline := time.Now().Add(demoChildTimeout)
		e.printf("ready\n")
		for gets := int64(1); ; gets++ {
			v, err := s.inst.AppendGet(buf[:0], []byte(key))
			if err == nil && bytes.Equal(v, want) {
				e.printf("seen %d %d\n", time.Now().UnixNano(), gets)
				return nil
			}
			if gets%1024 == 0 {
				if time.Now().After(deadline) {
					return fmt.Errorf("demo-child: %q not seen in %s", key, demoChildTimeout)
				}
				runtime.Gosched()
			}
		}
	}
	return usageErrorf("demo-child: unknown role %q", role)
}

// demoChild is a running child process of the demo.
type demoChild struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

// spawn starts a demo child on the named machine's state.
func (d *demo) spawn(machine, role, key, value string) (*demoChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, wrap(err, "find own executable")
	}
	cmd := exec.CommandContext(d.e.ctx, exe, "demo-child", "--store", "file:"+d.logDir,
		"--state", d.statePath(machine), "--", role, key, value)
	cmd.Stderr = d.e.stderr
	cmd.Env = append(os.Environ(), "WHYCACHE_STORE=", "WHYCACHE_STATE=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, wrap(err, "start a child process")
	}
	return &demoChild{cmd: cmd, out: bufio.NewScanner(out)}, nil
}

func (c *demoChild) pid() int { return c.cmd.Process.Pid }

// expect reads the child's next line, which must start with word, and
// returns its other fields.
func (c *demoChild) expect(word string) ([]string, error) {
	if !c.out.Scan() {
		err := c.cmd.Wait()
		return nil, fmt.Errorf("child process %d ended before saying %q: %v", c.pid(), word, err)
	}
	f := strings.Fields(c.out.Text())
	if len(f) == 0 || f[0] != word {
		return nil, fmt.Errorf("child process %d said %q, want %q", c.pid(), c.out.Text(), word)
	}
	return f[1:], nil
}

// wait waits for the child to exit.
func (c *demoChild) wait() error {
	if err := c.cmd.Wait(); err != nil {
		return wrap(err, "child process %d", c.pid())
	}
	return nil
}

// kill stops a child that has not exited and reaps it.
func (c *demoChild) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}
