package mariadbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Server is one private mariadbd: its own datadir, socket and error log
// under one directory, listening on 127.0.0.1 only, user root with an
// empty password. Kill ends it.
type Server struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Dir holds the datadir, the socket, the pid file, the binary logs
	// and error.log.
	Dir string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// DSN returns the go-sql-driver/mysql DSN of user (no password) on the
// server's TCP port and database db.
func (s *Server) DSN(user, db string) string {
	return fmt.Sprintf("%s@tcp(127.0.0.1:%d)/%s", user, s.Port, db)
}

// Open returns a pool as root on database db of the server. The caller
// closes it.
func (s *Server) Open(db string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(s.DSN("root", db))
	if err != nil {
		return nil, err
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// Kill ends the server at once (SIGKILL) and waits for it to exit.
func (s *Server) Kill() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill() // an exited process is fine
	<-s.done
}

// errorLog returns the last lines of the server's error log, for
// messages.
func (s *Server) errorLog() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "error.log"))
	if err != nil {
		return "(no error log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// mariadbd returns the path of the server binary, which Debian installs
// in /usr/sbin (not on every user's PATH).
func mariadbd() (string, error) {
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mariadbd", "/usr/sbin/mysqld"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mariadbd is not installed (apt-get install mariadb-server)")
}

// runAs is the user the servers run as: the current one, or mysql when
// running as root (mariadbd refuses to run as root unless told to).
type runAs struct {
	name     string              // for --user
	cred     *syscall.Credential // nil: as the current user
	uid, gid int
}

// serverUser returns who the servers run as.
func serverUser() (runAs, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return runAs{}, err
		}
		return runAs{name: u.Username, uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return runAs{}, fmt.Errorf("running as root needs the user mysql to run mariadbd: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runAs{name: "mysql", cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid}, nil
}

// install creates a datadir in dir/data with mariadb-install-db, owned by
// as.
func install(ctx context.Context, dir string, as runAs) error {
	bin, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		bin, err = exec.LookPath("mysql_install_db")
	}
	if err != nil {
		return errors.New("mariadb-install-db is not installed (apt-get install mariadb-server)")
	}
	data := filepath.Join(dir, "data")
	// A tmpdir of its own: concurrent bootstraps in a shared /tmp can
	// collide on their temporary tables' names.
	cmd := exec.CommandContext(ctx, bin, "--no-defaults", "--datadir="+data, "--user="+as.name,
		"--tmpdir="+filepath.Join(dir, "tmp"),
		"--auth-root-authentication-method=normal", "--skip-test-db",
		"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadb-install-db in %s: %w\n%s", dir, err, tail(string(out), 25))
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts mariadbd on the datadir in dir with the given server
// id (binary log on, row format, a small buffer pool) and waits until it
// answers. A port taken meanwhile by somebody else is retried with
// another.
func startServer(ctx context.Context, dir string, id int, as runAs) (*Server, error) {
	bin, err := mariadbd()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Port: port, Dir: dir, done: make(chan struct{})}
		s.cmd = exec.Command(bin, "--no-defaults",
			"--datadir="+filepath.Join(dir, "data"),
			"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
			"--socket="+filepath.Join(dir, "mysqld.sock"),
			"--pid-file="+filepath.Join(dir, "mysqld.pid"),
			"--log-error="+filepath.Join(dir, "error.log"),
			"--tmpdir="+filepath.Join(dir, "tmp"),
			"--user="+as.name,
			"--server-id="+strconv.Itoa(id),
			"--log-bin="+filepath.Join(dir, "data", "binlog"), "--binlog-format=ROW",
			"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
			"--innodb-flush-log-at-trx-commit=2",
			"--skip-name-resolve", "--performance-schema=OFF",
			"--max-connections=200",
			// The query cache on, as README's fleet settings recommend:
			// every test on these servers runs with it.
			"--query-cache-type=1", "--query-cache-size=16M",
		)
		// The servers die with the test binary, even when it is killed:
		// Pdeathsig, set after the switch to as (a credential change
		// would clear it), on a thread that lives as long as the server.
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: as.cred}
		if err := startLocked(s.cmd, s.done); err != nil {
			return nil, fmt.Errorf("start mariadbd: %w", err)
		}
		err = s.waitReady(ctx)
		if err == nil {
			return s, nil
		}
		s.Kill()
		lastErr = err
		if !strings.Contains(s.errorLog(), "Address already in use") {
			break
		}
	}
	return nil, lastErr
}

// startLocked starts cmd from a goroutine locked to its thread, which
// waits for cmd and then closes done: the thread (the child's parent for
// Pdeathsig) ends only when the child has.
func startLocked(cmd *exec.Cmd, done chan struct{}) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			close(done)
			return
		}
		started <- nil
		_ = cmd.Wait() // the exit status of a killed server says nothing
		close(done)
	}()
	return <-started
}

// waitReady waits until the server answers a query as root, it exits, or
// ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	db, err := s.Open("")
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("mariadbd on port %d exited:\n%s", s.Port, s.errorLog())
		case <-ctx.Done():
			return fmt.Errorf("mariadbd on port %d did not answer: %w (%v)\n%s", s.Port, ctx.Err(), err, s.errorLog())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
