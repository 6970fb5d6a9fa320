package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// serveProc is a "whycache serve" subprocess.
type serveProc struct {
	cmd    *exec.Cmd
	addrs  []string // as logged: HOST:PORT and unix:PATH
	procs  int      // GOMAXPROCS, as logged
	gogc   int      // the collector's target, as logged
	stderr *strings.Builder
	done   chan error
}

// startServe starts serve with args after the store flags and env added
// to the command's environment, and waits for its "serving" log line.
func startServe(t *testing.T, c *cli, env []string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(binPath, c.args(append(args, "--log-format", "json"))...)
	cmd.Env = append(cliEnv(), env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, stderr: &strings.Builder{}, done: make(chan error, 1)}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.stderr.WriteString(sc.Text() + "\n")
			var rec struct {
				Msg   string   `json:"msg"`
				Addrs []string `json:"addrs"`
				Procs int      `json:"procs"`
				GOGC  int      `json:"gogc"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "whycache: serve: serving" {
				p.procs, p.gogc = rec.Procs, rec.GOGC // read after the send below
				ready <- rec.Addrs
			}
		}
		io.Copy(io.Discard, pipe)
		p.done <- cmd.Wait()
		close(ready)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	select {
	case addrs, ok := <-ready:
		if !ok {
			t.Fatalf("serve exited before serving:\n%s", p.stderr)
		}
		p.addrs = addrs
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start in 30 s")
	}
	return p
}

// client returns a go-redis client of the i-th address.
func (p *serveProc) client(t *testing.T, i int, password string) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: p.addrs[i], Password: password}
	if path, ok := strings.CutPrefix(p.addrs[i], "unix:"); ok {
		o.Network, o.Addr = "unix", path
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// stop sends SIGTERM and returns the exit error.
func (p *serveProc) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop in 30 s after SIGTERM")
		return nil
	}
}

// TestServe runs the server on TCP and a Unix socket over a file store:
// the socket's mode, reads and writes on both, a write by another process
// of the machine seen at once, a write from another machine seen after
// the built-in follow loop applied it, and a clean stop that removes the
// socket.
func TestServe(t *testing.T) {
	c := fileCLI(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "serve.state")
	sock := filepath.Join(dir, "whycache.sock")
	c.ok("--state", state, "set", "before", "1")
	p := startServe(t, c, nil, "--state", state, "serve", "--addr", "127.0.0.1:0", "--unix", sock, "--interval", "50ms")
	if len(p.addrs) != 2 || p.addrs[1] != "unix:"+sock {
		t.Fatalf("addresses %q", p.addrs)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v", fi.Mode(), err)
	}
	ctx := context.Background()
	tcp, unix := p.client(t, 0, ""), p.client(t, 1, "")
	if v, err := tcp.Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Errorf("GET of a key written before the start: %q, %v", v, err)
	}
	if err := unix.Set(ctx, "k", "over the socket", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := tcp.Get(ctx, "k").Result(); err != nil || v != "over the socket" {
		t.Errorf("GET over TCP of a SET over the socket: %q, %v", v, err)
	}
	// Another process of this machine writes: the shared state has it at once.
	c.ok("--state", state, "set", "cli", "x")
	if v, err := unix.Get(ctx, "cli").Result(); err != nil || v != "x" {
		t.Errorf("GET of a key set by another process: %q, %v", v, err)
	}
	// Another machine (another state file) writes: it appears once the
	// follow loop applied it.
	c.ok("--state", filepath.Join(dir, "other.state"), "set", "remote", "y")
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := tcp.Get(ctx, "remote").Result()
		if err == nil && v == "y" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write from another machine did not appear in 10 s: %q, %v", v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, err := tcp.Info(ctx, "replication").Result()
	if err != nil || !strings.Contains(info, "whycache_follow:on") || !strings.Contains(info, "whycache_follow_leader:1") ||
		!strings.Contains(info, "whycache_latest_id:") || !strings.Contains(info, "whycache_lag_records:") {
		t.Errorf("INFO replication: %q, %v", info, err)
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, p.stderr)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after stop: %v", err)
	}
}

func TestServeUsageErrors(t *testing.T) {
	c := fileCLI(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "s.state")
	open := filepath.Join(dir, "pw-open")
	os.WriteFile(open, []byte("pw\n"), 0o644)
	private := filepath.Join(dir, "pw")
	os.WriteFile(private, []byte("pw\n"), 0o600)
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o600)
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"no address", nil, []string{"serve"}, exitUsage, "give --addr HOST:PORT and/or --unix PATH"},
		{"every interface", nil, []string{"serve", "--addr", ":0"}, exitUsage, "listens on every interface"},
		{"not loopback", nil, []string{"serve", "--addr", "0.0.0.0:0"}, exitUsage, "is not a loopback address"},
		{"bad address", nil, []string{"serve", "--addr", "localhost"}, exitUsage, "want HOST:PORT"},
		{"socket mode without owner", nil, []string{"serve", "--unix", filepath.Join(dir, "s"), "--socket-mode", "0400"}, exitUsage, "the owner must be able to connect"},
		{"socket mode not octal", nil, []string{"serve", "--unix", filepath.Join(dir, "s"), "--socket-mode", "rw"}, exitUsage, "want an octal mode"},
		{"password file readable by all", nil, []string{"serve", "--addr", "127.0.0.1:0", "--requirepass-file", open}, exitUsage, "is readable by every user"},
		{"password twice", []string{servePasswordEnv + "=x"}, []string{"serve", "--addr", "127.0.0.1:0", "--requirepass-file", private}, exitUsage, "the password is given twice"},
		{"socket in a file", nil, []string{"serve", "--unix", filepath.Join(notDir, "s")}, exitFailure, "is not a directory"},
		{"socket on a file", nil, []string{"serve", "--unix", private}, exitFailure, "exists and is not a socket"},
		{"negative procs", nil, []string{"serve", "--addr", "127.0.0.1:0", "--procs", "-1"}, exitUsage, "want 1 or more cores"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, c.args(append([]string{"--state", state}, tc.args...))...)
			cmd.Env = append(cliEnv(), tc.env...)
			r := runCmd(t, cmd)
			line := checkFailure(t, r, tc.code, tc.args)
			if !strings.Contains(line, tc.want) {
				t.Errorf("error %q does not say %q", line, tc.want)
			}
			if strings.Contains(line, "pw") && strings.Contains(tc.name, "password") && strings.Contains(line, "\"pw\"") {
				t.Errorf("the password shows in %q", line)
			}
		})
	}
}

// TestServeProcs runs the server on one core unless --procs says
// otherwise; --procs 0 keeps Go's default, here set by GOMAXPROCS.
func TestServeProcs(t *testing.T) { // and GOGC
	c := fileCLI(t)
	state := filepath.Join(t.TempDir(), "serve.state")
	for _, tc := range procsCases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--state", state, "serve", "--addr", "127.0.0.1:0", "--no-follow"}, tc.args...)
			p := startServe(t, c, append([]string{"GOGC="}, tc.env...), args...)
			if p.procs != tc.want {
				t.Errorf("serve runs on %d cores, want %d", p.procs, tc.want)
			}
			if p.gogc != serveGCPercent {
				t.Errorf("serve's collector at GOGC=%d, want %d when $GOGC is not set", p.gogc, serveGCPercent)
			}
			if err := p.stop(t); err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
	p := startServe(t, c, []string{"GOGC=50"}, "--state", state, "serve", "--addr", "127.0.0.1:0", "--no-follow")
	if p.gogc != 50 {
		t.Errorf("serve with $GOGC=50: collector at GOGC=%d", p.gogc)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestServePassword requires AUTH with the password of the environment
// or of a file; it never appears in the log.
func TestServePassword(t *testing.T) {
	c := fileCLI(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("file-secret\n"), 0o600)
	cases := []struct {
		name, password string
		env            []string
		args           []string
	}{
		{"environment", "env-secret", []string{servePasswordEnv + "=env-secret"}, nil},
		{"file", "file-secret", nil, []string{"--requirepass-file", pwFile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startServe(t, c, tc.env, append([]string{"--state", filepath.Join(dir, tc.name+".state"), "serve", "--addr", "127.0.0.1:0"}, tc.args...)...)
			ctx := context.Background()
			if err := p.client(t, 0, "").Get(ctx, "a").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
				t.Errorf("without the password: %v", err)
			}
			if err := p.client(t, 0, "wrong").Get(ctx, "a").Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Errorf("with a wrong password: %v", err)
			}
			if err := p.client(t, 0, tc.password).Set(ctx, "a", "1", 0).Err(); err != nil {
				t.Errorf("with the password: %v", err)
			}
			p.stop(t)
			if strings.Contains(p.stderr.String(), tc.password) {
				t.Errorf("the password is in the log:\n%s", p.stderr)
			}
		})
	}
}

// TestServeRedisCLI uses redis-cli, a client nobody here wrote, over TCP
// and the socket.
func TestServeRedisCLI(t *testing.T) {
	bin, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-cli is not installed (apt-get install redis-tools)")
		}
		t.Skip("redis-cli is not installed: apt-get install redis-tools to run this test")
	}
	host, port, sock := startServeBoth(t)
	tcp := []string{"-h", host, "-p", port}
	unix := []string{"-s", sock}
	cases := []struct {
		conn []string
		args []string
		want string
	}{
		{tcp, []string{"PING"}, "PONG"},
		{tcp, []string{"SET", "user:1", "ann"}, "OK"},
		{unix, []string{"SET", "user:2", "bob"}, "OK"},
		{unix, []string{"GET", "user:1"}, "ann"},
		{tcp, []string{"MGET", "user:1", "nope", "user:2"}, "ann\n\nbob"},
		{tcp, []string{"--scan", "--pattern", "user:*"}, "user:1\nuser:2"},
		{tcp, []string{"EXISTS", "user:1", "nope"}, "1"},
		{tcp, []string{"DBSIZE"}, "2"},
		{tcp, []string{"DEL", "user:1"}, "1"},
		{unix, []string{"GET", "user:1"}, ""},
		{tcp, []string{"NOSUCH", "x"}, "ERR unknown command 'NOSUCH', with args beginning with: 'x'"},
	}
	for _, tc := range cases {
		out, err := exec.Command(bin, append(tc.conn, tc.args...)...).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
			t.Errorf("redis-cli %q: %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
	// Interactive mode (stdin not a terminal) asks COMMAND DOCS first.
	cmd := exec.Command(bin, tcp...)
	cmd.Stdin = strings.NewReader("set a 1\nget a\ninfo keyspace\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK\n1\n") || !strings.Contains(string(out), "db0:keys=2") {
		t.Errorf("redis-cli with commands on stdin: %q, %v", out, err)
	}
}

// TestServePython runs a Python script with Debian's python3-redis
// against the server: set, get, SET EX (and the key gone after it),
// scan, delete.
func TestServePython(t *testing.T) {
	// The first python3 on PATH may be another installation than the
	// system's, which Debian's python3-redis extends.
	python := clientInterpreter(t, "python3 with the redis module", "python3-redis",
		[]string{"python3", "/usr/bin/python3"}, "-c", "import redis")
	runServeClient(t, python, "testdata/serve_client.py", "expiry: ok")
}

// TestServeRuby runs testdata/serve_client.rb (Debian's ruby-redis)
// against serve.
func TestServeRuby(t *testing.T) {
	ruby := clientInterpreter(t, "ruby with the redis gem", "ruby-redis", []string{"ruby"}, "-e", "require 'redis'")
	runServeClient(t, ruby, "testdata/serve_client.rb", "")
}

// clientInterpreter returns the first of candidates on PATH that runs
// check (a client library's import) successfully; without one the test
// is skipped, or fails in CI, naming the Debian package.
func clientInterpreter(t *testing.T, what, pkg string, candidates []string, check ...string) string {
	t.Helper()
	for _, cand := range candidates {
		if p, err := exec.LookPath(cand); err == nil && exec.Command(p, check...).Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (apt-get install %s)", what, pkg)
	}
	t.Skipf("%s is not installed: apt-get install %s to run this test", what, pkg)
	return ""
}

// runServeClient starts serve and runs script with interpreter against
// its TCP address and its socket; the output must hold "all checks
// passed" and want (anything, when empty).
func runServeClient(t *testing.T, interpreter, script, want string) {
	t.Helper()
	host, port, sock := startServeBoth(t)
	for _, target := range [][]string{{"--host", host, "--port", port}, {"--unix", sock}} {
		out, err := exec.Command(interpreter, append([]string{script}, target...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "all checks passed") {
			t.Errorf("%s %q: %v\n%s", script, target, err, out)
		}
	}
}

// startServeBoth starts serve on a fresh file store, on a loopback port
// and a Unix socket, and returns the host, port and socket path.
func startServeBoth(t *testing.T) (host, port, sock string) {
	t.Helper()
	c := fileCLI(t)
	dir := t.TempDir()
	sock = filepath.Join(dir, "s.sock")
	p := startServe(t, c, nil, "--state", filepath.Join(dir, "s.state"), "serve", "--addr", "127.0.0.1:0", "--unix", sock)
	host, port, _ = net.SplitHostPort(p.addrs[0])
	return host, port, sock
}

// TestServeSocketOtherUser checks the socket's mode against a second
// user: with 0600 the user cannot connect, with 0666 it can; and a socket
// that user planted at the path in a shared sticky directory is refused,
// not removed.
func TestServeSocketOtherUser(t *testing.T) {
	cliBin, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed: apt-get install redis-tools to run this test")
	}
	m := newSharedMachine(t)
	c := fileCLI(t)
	for _, tc := range []struct {
		mode    string
		connect bool
	}{{"0600", false}, {"0666", true}} {
		sock := filepath.Join(m.pub, "s"+tc.mode+".sock")
		startServe(t, c, nil, "--state", filepath.Join(t.TempDir(), "s.state"), "serve", "--unix", sock, "--socket-mode", tc.mode)
		out, err := m.user.Command(cliBin, m.pub, "-s", sock, "ping").CombinedOutput()
		switch got := strings.TrimSpace(string(out)); {
		case tc.connect && (err != nil || got != "PONG"):
			t.Errorf("mode %s: the other user could not connect: %q, %v", tc.mode, got, err)
		case !tc.connect && strings.Contains(got, "PONG"):
			t.Errorf("mode %s: the other user connected", tc.mode)
		case !tc.connect && !strings.Contains(got, "ermission denied"):
			t.Errorf("mode %s: the other user's redis-cli said %q, want permission denied", tc.mode, got)
		}
	}

	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Log("no /usr/bin/python3 to plant a socket as the other user; that case is skipped")
		return
	}
	planted := filepath.Join(m.sticky, "planted.sock")
	if out, err := m.user.Command(python, m.pub, "-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", planted).CombinedOutput(); err != nil {
		t.Fatalf("plant a socket as %d: %v: %s", m.user.UID, err, out)
	}
	cmd := exec.Command(binPath, c.args([]string{"--state", filepath.Join(t.TempDir(), "p.state"), "serve", "--unix", planted})...)
	cmd.Env = cliEnv()
	line := checkFailure(t, runCmd(t, cmd), exitFailure, []string{"serve", "--unix", planted})
	if !strings.Contains(line, "not yours") {
		t.Errorf("serve on a planted socket: %s", line)
	}
	if _, err := os.Lstat(planted); err != nil {
		t.Errorf("the planted socket was removed: %v", err)
	}
}

// TestServeNoFollow checks that --no-follow leaves the follow loop (and
// its leader lock) to a 'whycache follow' beside the server.
func TestServeNoFollow(t *testing.T) {
	c := fileCLI(t)
	state := filepath.Join(t.TempDir(), "s.state")
	p := startServe(t, c, nil, "--state", state, "serve", "--addr", "127.0.0.1:0", "--no-follow")
	info, err := p.client(t, 0, "").Info(context.Background(), "replication").Result()
	if err != nil || !strings.Contains(info, "whycache_follow:off") {
		t.Errorf("INFO replication: %q, %v", info, err)
	}
	if _, err := os.Stat(state + ".follow"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the follow lock file exists: %v", err)
	}
}

// TestServeFacingStoppedWriter stops a writer process (SIGSTOP) inside a
// batch on the state serve reads: a GET waits for it on a goroutine of its
// own and fails after --read-timeout naming the writer, while the event
// loop goes on answering other connections (a PING sent during that wait
// is answered before the GET's read timeout could have passed). On the
// loop, the GET held up every connection for the whole read timeout.
func TestServeFacingStoppedWriter(t *testing.T) {
	const readTimeout = 2 * time.Second // below go-redis's 3 s
	c := fileCLI(t)
	state := filledState(c, t.TempDir(), 2)
	c.ok("--state", state, "set", "k", "v")
	p := startServe(t, c, nil, "--read-timeout", readTimeout.String(), "--state", state, "serve", "--addr", "127.0.0.1:0", "--no-follow")
	getter, pinger := p.client(t, 0, ""), p.client(t, 0, "")
	ctx := context.Background()
	if err := pinger.Ping(ctx).Err(); err != nil { // connected before the writer stops
		t.Fatal(err)
	}
	pid, cont := startStoppedWriter(t, state)
	got := make(chan error, 1)
	start := time.Now()
	go func() { got <- getter.Get(ctx, "k").Err() }()
	time.Sleep(300 * time.Millisecond) // the GET is waiting for the writer
	if err := pinger.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING while a GET waits for the stopped writer: %v", err)
	}
	if took := time.Since(start); took >= readTimeout {
		t.Fatalf("a PING sent 300 ms after a GET facing the stopped writer was answered %v after the GET: the loop waited with it", took)
	}
	select {
	case err := <-got:
		if err == nil || !strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)) {
			t.Errorf("GET facing the stopped writer: %v; want an error naming pid %d", err, pid)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the GET facing the stopped writer did not end in 30 s")
	}
	cont()
	if v, err := getter.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("GET after the writer went on: %q, %v", v, err)
	}
}
