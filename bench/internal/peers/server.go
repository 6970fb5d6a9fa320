package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of starting and stopping a server.
const (
	serverStartTimeout = 15 * time.Second
	serverStopTimeout  = 5 * time.Second
	serverStartTries   = 3
)

// StartServer runs binary with args(port) in dir on a free loopback port,
// as the peers' own servers are started (see startServer), for commands
// that need a server of their own (a private MariaDB, say).
func StartServer(ctx context.Context, dir, name, binary string, args func(port int) []string) (addr string, stop func() error, err error) {
	return startServer(ctx, dir, name, binary, args)
}

// startServer runs binary with args(port) in dir on a free loopback port
// and waits until the port accepts connections. Its output goes to
// dir/NAME.log. The server gets SIGTERM when stop is called or ctx ends,
// SIGKILL if it has not exited 5 s later, and SIGKILL if this process
// dies. A port taken by someone else between the choice and the bind is
// retried with another.
func startServer(ctx context.Context, dir, name, binary string, args func(port int) []string) (addr string, stop func() error, err error) {
	for try := 1; ; try++ {
		addr, stop, err = startServerOnce(ctx, dir, name, binary, args)
		if err == nil || try == serverStartTries || !strings.Contains(err.Error(), "in use") {
			return addr, stop, err
		}
	}
}

func startServerOnce(ctx context.Context, dir, name, binary string, args func(port int) []string) (string, func() error, error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", nil, fmt.Errorf("peers: %s: %w", name, err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, binary, args(port)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = serverStopTimeout
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("peers: start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(serverStopTimeout):
			cmd.Process.Kill()
			<-exited
		}
		return nil
	}
	deadline := time.Now().Add(serverStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, stop, nil
		}
		select {
		case werr := <-exited:
			out, _ := os.ReadFile(logPath)
			return "", nil, fmt.Errorf("peers: %s exited before accepting connections (%v): %s", name, werr, lastLines(string(out), 5))
		case <-ctx.Done():
			stop()
			return "", nil, fmt.Errorf("peers: start %s: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("peers: %s did not accept connections on %s within %v", name, addr, serverStartTimeout)
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("peers: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// needBinary returns a *MissingError unless binary is in PATH.
func needBinary(system, binary, pkg string) error {
	if _, err := exec.LookPath(binary); err != nil {
		return &MissingError{System: system, What: binary + " not in PATH", Packages: []string{pkg}}
	}
	return nil
}

// binaryVersion runs binary with args and returns the first line of its
// output, or "".
func binaryVersion(binary string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).Output()
	if err != nil && !errors.As(err, new(*exec.ExitError)) {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
