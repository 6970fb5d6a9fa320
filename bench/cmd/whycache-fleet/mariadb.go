package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/bench/internal/peers"
)

// server is a MariaDB server the benchmark reads figures from: the shared
// one of -dsn or a private one it started.
type server struct {
	name string // "primary", "replica" or "shared"
	dsn  string // to database test (or -dsn's database)
	db   *sql.DB
	pid  int    // mariadbd's pid; 0 when unknown
	stop func() // nil for the shared server
}

// close closes the pool and stops a private server.
func (s *server) close() {
	if s.db != nil {
		s.db.Close()
	}
	if s.stop != nil {
		s.stop()
	}
}

// openDB opens a pool on dsn holding at most conns connections, and pings.
func openDB(ctx context.Context, dsn string, conns int) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid DSN: %w", err)
	}
	cfg.ParseTime = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// interpolated returns dsn with interpolateParams=true and
// maxAllowedPacket=0, the options mysqlstore's documentation recommends for
// writers: a commit's statements then go as text, one round trip each.
func interpolated(dsn string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("invalid DSN: %w", err)
	}
	cfg.InterpolateParams, cfg.MaxAllowedPacket = true, 0
	return cfg.FormatDSN(), nil
}

// sharedServer opens the server of dsn and finds mariadbd's pid from its
// pid file when this process may read it.
func sharedServer(ctx context.Context, dsn string) (*server, error) {
	db, err := openDB(ctx, dsn, 1)
	if err != nil {
		return nil, fmt.Errorf("-dsn: %w", err)
	}
	s := &server{name: "shared", dsn: dsn, db: db}
	var pidFile string
	if err := db.QueryRowContext(ctx, "SELECT @@pid_file").Scan(&pidFile); err == nil {
		s.pid = readPidFile(pidFile)
	}
	return s, nil
}

// readPidFile returns the pid in path, or 0.
func readPidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// privateServer initialises a datadir under dir and starts mariadbd on a
// free loopback port with root (no password) and database test. With
// serverID > 0 it writes a binary log (a replication primary or replica).
// extra options are appended to mariadbd's command line.
func privateServer(ctx context.Context, dir, name string, serverID, maxConns int, extra []string) (*server, error) {
	data := filepath.Join(dir, name)
	install := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--user=root")
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("private %s: mariadb-install-db: %v: %s", name, err, lastLine(string(out)))
	}
	pidFile := filepath.Join(dir, name+".pid")
	addr, stop, err := peers.StartServer(ctx, dir, name, "mariadbd", func(port int) []string {
		args := []string{
			"--no-defaults", "--datadir=" + data, "--user=root",
			"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
			"--socket=" + filepath.Join(dir, name+".sock"), "--pid-file=" + pidFile,
			"--max-connections=" + strconv.Itoa(maxConns), "--skip-name-resolve",
		}
		if serverID > 0 {
			args = append(args, "--server-id="+strconv.Itoa(serverID),
				"--log-bin="+filepath.Join(dir, name+"-bin"), "--binlog-format=ROW")
		}
		return append(args, extra...)
	})
	if err != nil {
		return nil, fmt.Errorf("private %s: %w", name, err)
	}
	dsn := "root@tcp(" + addr + ")/"
	db, err := openDB(ctx, dsn, 1)
	if err == nil {
		_, err = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS test")
		db.Close()
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("private %s: %w", name, err)
	}
	s := &server{name: name, dsn: dsn + "test", stop: func() { stop() }}
	if s.db, err = openDB(ctx, s.dsn, 1); err != nil {
		stop()
		return nil, fmt.Errorf("private %s: %w", name, err)
	}
	for deadline := time.Now().Add(5 * time.Second); s.pid == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.pid = readPidFile(pidFile)
	}
	return s, nil
}

// replicaPair starts a private primary and a replica of it, replicating
// from the primary's first binary log position (so database test, created
// on the primary, reaches the replica through replication).
func replicaPair(ctx context.Context, dir string, maxConns int, extra []string) (primary, replica *server, err error) {
	if primary, err = privateServer(ctx, dir, "primary", 1, maxConns, extra); err != nil {
		return nil, nil, err
	}
	if replica, err = privateServer(ctx, dir, "replica", 2, maxConns, extra); err != nil {
		primary.close()
		return nil, nil, err
	}
	cfg, _ := mysql.ParseDSN(primary.dsn)
	host, port, _ := strings.Cut(cfg.Addr, ":")
	// The replica's own bootstrap (CREATE DATABASE test) must not count
	// as a transaction of its own in its GTID position.
	stmts := []string{
		"RESET MASTER",
		"SET GLOBAL gtid_slave_pos = ''",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=current_pos", host, port),
		"SET GLOBAL read_only=ON",
		"START SLAVE",
	}
	for _, q := range stmts {
		if _, err = replica.db.ExecContext(ctx, q); err != nil {
			break
		}
	}
	if err == nil {
		err = waitReplicaRunning(ctx, replica.db)
	}
	if err != nil {
		replica.close()
		primary.close()
		return nil, nil, fmt.Errorf("set up replication: %w", err)
	}
	return primary, replica, nil
}

// waitReplicaRunning waits until both replication threads run.
func waitReplicaRunning(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		io, sqlThread, lastErr, err := replicaStatus(ctx, db)
		if err != nil {
			return err
		}
		if io == "Yes" && sqlThread == "Yes" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica threads not running (io %s, sql %s): %s", io, sqlThread, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicaStatus returns Slave_IO_Running, Slave_SQL_Running and the last
// error of SHOW SLAVE STATUS.
func replicaStatus(ctx context.Context, db *sql.DB) (io, sqlThread, lastErr string, err error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return "", "", "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", "", "", err
	}
	if !rows.Next() {
		return "", "", "", errors.New("SHOW SLAVE STATUS: no replication configured")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", "", "", err
	}
	for i, c := range cols {
		switch c {
		case "Slave_IO_Running":
			io = vals[i].String
		case "Slave_SQL_Running":
			sqlThread = vals[i].String
		case "Last_Error", "Last_IO_Error", "Last_SQL_Error":
			if vals[i].String != "" {
				lastErr = vals[i].String
			}
		}
	}
	return io, sqlThread, lastErr, rows.Err()
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
