package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/whycache/whycache/internal/statedir/statedirtest"
)

// sharedMachine is a machine with a second, unprivileged user: the tests
// run as root and run the command as that user too.
type sharedMachine struct {
	t      *testing.T
	user   statedirtest.User
	pub    string // root-owned 0755 directory both can traverse
	sticky string // world-writable sticky directory, like /dev/shm
	bin    string // the command, executable by both
}

func newSharedMachine(t *testing.T) *sharedMachine {
	u := statedirtest.NeedUser(t)
	pub := statedirtest.PublicDir(t)
	sticky := filepath.Join(pub, "shm")
	if err := os.Mkdir(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pub, "whycache")
	src, err := os.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	return &sharedMachine{t: t, user: u, pub: pub, sticky: sticky, bin: bin}
}

// asUser runs the command as the unprivileged user.
func (m *sharedMachine) asUser(args ...string) result {
	m.t.Helper()
	cmd := m.user.Command(m.bin, m.pub, args...)
	cmd.Env = cliEnv()
	return runCmd(m.t, cmd)
}

// asUserTool runs another program as the unprivileged user.
func (m *sharedMachine) asUserTool(prog string, args ...string) {
	m.t.Helper()
	cmd := m.user.Command(prog, m.pub, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		m.t.Fatalf("%s %q as %s: %v: %s", prog, args, statedirtest.UserName, err, out)
	}
}

// runCmd runs cmd and returns its output and exit code.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %q: %v", cmd.Args, err)
	}
	return result{out.String(), errb.String(), code}
}

// TestSquattedStateDirectoryRefused: another user creates the state
// directory first (mode 0777), plants a state file full of its own data
// and symbolic links where the lock files go. Root's commands refuse the
// directory, say what to remove, and create nothing through the links.
func TestSquattedStateDirectoryRefused(t *testing.T) {
	m := newSharedMachine(t)
	squat := filepath.Join(m.sticky, "whycache-squat")
	m.asUserTool("/bin/mkdir", "-m", "0777", squat)
	// The user makes a state of its own elsewhere and moves it in.
	own := filepath.Join(m.sticky, "own")
	userLog := "file:" + filepath.Join(own, "log")
	if r := m.asUser("--store", userLog, "init-schema"); r.code != 0 {
		t.Fatalf("init-schema as the user: %s", r.stderr)
	}
	for _, args := range [][]string{{"update"}, {"set", "k", "planted"}} {
		if r := m.asUser(append([]string{"--store", userLog, "--state", filepath.Join(own, "app.state")}, args...)...); r.code != 0 {
			t.Fatalf("%s as the user: %s", args[0], r.stderr)
		}
	}
	state := filepath.Join(squat, "app.state")
	m.asUserTool("/bin/mv", filepath.Join(own, "app.state"), state)
	target := filepath.Join(m.pub, "created-through-a-link")
	for _, lock := range []string{".lock", ".follow"} {
		m.asUserTool("/bin/ln", "-s", target+lock, state+lock)
	}
	c := fileCLI(t) // root's own log
	for _, args := range [][]string{{"get", "k"}, {"update"}, {"set", "k", "v"}, {"ls"}} {
		line := c.fails(exitFailure, append([]string{"--state", state}, args...)...)
		uid := strconv.Itoa(m.user.UID)
		if !strings.Contains(line, "unsafe") && !strings.Contains(line, uid) {
			t.Errorf("%s in a directory another user squatted: %q, want it refused naming the owner", args[0], line)
		}
		if !strings.Contains(line, "rm ") && !strings.Contains(line, "chown") && !strings.Contains(line, "chmod") {
			t.Errorf("%s: %q does not say how to fix it", args[0], line)
		}
	}
	for _, lock := range []string{".lock", ".follow"} {
		if _, err := os.Lstat(target + lock); err == nil {
			t.Errorf("a file was created through the planted link %s", state+lock)
		}
	}
}

// TestPlantedFilesInSharedDirectoryRefused: root keeps its state in a
// shared sticky directory (like /dev/shm itself); another user plants the
// state file and a symbolic link for the follow lock before root's first
// use. Root refuses both.
func TestPlantedFilesInSharedDirectoryRefused(t *testing.T) {
	m := newSharedMachine(t)
	userLog := "file:" + filepath.Join(m.sticky, "userlog")
	if r := m.asUser("--store", userLog, "init-schema"); r.code != 0 {
		t.Fatalf("init-schema as the user: %s", r.stderr)
	}
	state := filepath.Join(m.sticky, "root.state")
	if r := m.asUser("--store", userLog, "--state", state, "update"); r.code != 0 {
		t.Fatalf("update as the user: %s", r.stderr)
	}
	c := fileCLI(t)
	line := c.fails(exitFailure, "--state", state, "get", "k")
	if !strings.Contains(line, strconv.Itoa(m.user.UID)) && !strings.Contains(line, statedirtest.UserName) {
		t.Errorf("get of a state file another user planted: %q", line)
	}
	state2 := filepath.Join(m.sticky, "root2.state")
	target := filepath.Join(m.pub, "follow-target")
	m.asUserTool("/bin/ln", "-s", target, state2+".follow")
	r := c.run("--state", state2, "follow", "--interval", "100ms")
	if r.code == 0 || !strings.Contains(r.stderr, "symbolic link") {
		t.Errorf("follow with a planted link as its lock: exit %d, %s", r.code, r.stderr)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Error("follow created its lock through the planted link")
	}
}

// TestStateDirectoryOthersCanWriteRefused: a state directory the other user
// can write (so could rename a file over the state) is refused, with the
// chmod that fixes it.
func TestStateDirectoryOthersCanWriteRefused(t *testing.T) {
	m := newSharedMachine(t)
	dir := filepath.Join(m.pub, "open")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	c := fileCLI(t)
	line := c.fails(exitFailure, "--state", filepath.Join(dir, "a.state"), "update")
	if !strings.Contains(line, "chmod") {
		t.Errorf("update in a directory every user can write: %q, want the chmod that fixes it", line)
	}
}

// TestReadOnlyUserReadsDaemonState: root maintains the state (as the follow
// daemon would) with --file-mode 0640 in a directory of mode 0750 whose
// group is the reader's; the unprivileged user reads it at full speed
// without write access, without the log and without creating any file, and
// cannot change it.
func TestReadOnlyUserReadsDaemonState(t *testing.T) {
	m := newSharedMachine(t)
	c := fileCLI(t)
	dir := filepath.Join(m.pub, "readers")
	state := filepath.Join(dir, "app.state")
	c.ok("--file-mode", "0640", "--state", state, "update")
	c.ok("--file-mode", "0640", "--state", state, "set", "greeting", "hello")
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o750 {
		t.Fatalf("state directory mode %#o, want 0750 for files of mode 0640", st.Mode().Perm())
	}
	for _, p := range []string{dir, state} {
		if err := os.Chown(p, 0, m.user.GID); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadDir(dir)
	r := m.asUser("--state", state, "get", "greeting")
	if r.code != 0 || r.stdout != "hello" {
		t.Fatalf("get as a reader: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	if r := m.asUser("--state", state, "ls", "--values"); r.code != 0 || !strings.Contains(r.stdout, "hello") {
		t.Fatalf("ls as a reader: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	r = m.asUser("--store", c.store, "--state", state, "set", "greeting", "hacked")
	if r.code == 0 {
		t.Fatal("set as a reader succeeded")
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Errorf("the reader's commands changed the directory: %d entries, were %d", len(after), len(before))
	}
	if got := c.ok("--state", state, "get", "greeting"); got != "hello" {
		t.Errorf("after the reader's set: %q", got)
	}
}
