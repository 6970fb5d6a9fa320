package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whycache/whycache/prefixtree"
)

// holdBatchEnv names the state file a helper process opens a batch on
// (see holdBatch).
const holdBatchEnv = "WHYCACHE_TEST_HOLD_BATCH"

func init() {
	if path := os.Getenv(holdBatchEnv); path != "" {
		os.Exit(holdBatch(path))
	}
}

// holdBatch is a helper process: it opens a batch on the state file at
// path, changes a key (so readers must wait for the batch), says "ready",
// stops itself with SIGSTOP, and once continued commits and exits.
func holdBatch(path string) int {
	t, err := prefixtree.Open(path, prefixtree.Options{NoCreate: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, err := t.Begin()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := b.Put([]byte("k"), []byte("from the stopped writer"), 1<<40); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	if err := b.Rollback(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// procState returns the state letter of process pid from /proc.
func procState(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// TestReadFacingStoppedWriter stops a writer (SIGSTOP) in the middle of a
// batch on the state file: get, ls, stats and verify fail after
// --read-timeout with an error naming the writer's pid, instead of
// hanging; once the writer goes on, they work again.
func TestReadFacingStoppedWriter(t *testing.T) {
	c := fileCLI(t)
	state := filledState(c, t.TempDir(), 2)
	c.ok("--state", state, "set", "k", "v")
	pid, cont := startStoppedWriter(t, state)
	for _, args := range [][]string{{"get", "k"}, {"ls"}, {"stats", "--local"}} {
		start := time.Now()
		line := c.fails(exitFailure, append([]string{"--read-timeout", "300ms", "--state", state}, args...)...)
		took := time.Since(start)
		if !strings.Contains(line, "pid "+strconv.Itoa(pid)) || !strings.Contains(line, "stopped") || !strings.Contains(line, "kill -CONT") {
			t.Errorf("%s facing a stopped writer: %q, want the pid %d, its state and what to do", args[0], line, pid)
		}
		if took > 10*time.Second {
			t.Errorf("%s took %s with --read-timeout 300ms", args[0], took)
		}
	}
	cont()
	if got := c.ok("--state", state, "get", "k"); got != "v" {
		t.Errorf("get after the writer went on: %q", got)
	}
}

// startStoppedWriter starts a helper process that opens a batch on the
// state file at state, changes key k in it and stops itself (SIGSTOP); it
// returns once the helper is stopped, with its pid and a function that
// continues it and waits for it to roll back and exit (also run at the
// test's end).
func startStoppedWriter(t *testing.T, state string) (int, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdBatchEnv+"="+state)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	done := false
	cont := func() {
		t.Helper()
		if done {
			return
		}
		done = true
		syscall.Kill(pid, syscall.SIGCONT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}
	t.Cleanup(cont)
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	for deadline := time.Now().Add(10 * time.Second); procState(pid) != "T"; {
		if time.Now().After(deadline) {
			t.Fatalf("helper %d never stopped (state %q)", pid, procState(pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return pid, cont
}
