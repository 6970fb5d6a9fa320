// Package mariadbtest starts, for tests, a private MariaDB primary and a
// replica of it: each its own mariadbd with its own datadir, socket and
// port on 127.0.0.1 (picked free), binary log on and its own server id;
// the replica follows the primary by GTID as root (empty password, which
// only the loopback interface reaches). Servers run as the current user,
// or as mysql when that is root, and die with the test binary.
//
// Shared gives the tests of one package one pair, started on first use;
// Main (from TestMain) kills it when the package's tests are done.
package mariadbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Database is the database Start creates on the primary (and so, through
// replication, on the replica).
const Database = "test"

// Pair is a primary and its replica. Its methods are safe for concurrent
// use; Close ends both servers.
type Pair struct {
	Primary, Replica *Server

	dir   string  // holds both servers' directories
	pdb   *sql.DB // root on the primary
	rdb   *sql.DB // root on the replica
	close sync.Once
}

// Start starts a primary and a replica of it in a new temporary
// directory, creates Database on the primary and waits until the replica
// has it. On error nothing is left running.
func Start(ctx context.Context) (_ *Pair, err error) {
	as, err := serverUser()
	if err != nil {
		return nil, err
	}
	if _, err := mariadbd(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "whycache-mariadb-")
	if err != nil {
		return nil, err
	}
	p := &Pair{dir: dir}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	// The servers may run as another user: it must reach their
	// directories.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	names := []string{"primary", "replica"}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, name := range names {
		sub := filepath.Join(dir, name)
		for _, d := range []string{sub, filepath.Join(sub, "tmp")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return nil, err
			}
			if err := os.Chown(d, as.uid, as.gid); err != nil {
				return nil, err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = install(ctx, sub, as)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	servers := make([]*Server, 2)
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = startServer(ctx, filepath.Join(dir, name), i+1, as)
		}()
	}
	wg.Wait()
	p.Primary, p.Replica = servers[0], servers[1]
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if p.pdb, err = p.Primary.Open(""); err != nil {
		return nil, err
	}
	if p.rdb, err = p.Replica.Open(""); err != nil {
		return nil, err
	}
	if _, err := p.rdb.ExecContext(ctx, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, "+
		"MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1", p.Primary.Port)); err != nil {
		return nil, fmt.Errorf("replica: CHANGE MASTER: %w", err)
	}
	if err := p.StartReplication(ctx); err != nil {
		return nil, err
	}
	if _, err := p.pdb.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+Database); err != nil {
		return nil, fmt.Errorf("primary: create database: %w", err)
	}
	if err := p.WaitCaughtUp(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Close kills both servers and removes their directory. It is
// idempotent.
func (p *Pair) Close() {
	p.close.Do(func() {
		for _, db := range []*sql.DB{p.pdb, p.rdb} {
			if db != nil {
				db.Close()
			}
		}
		p.Primary.Kill()
		p.Replica.Kill()
		os.RemoveAll(p.dir)
	})
}

// PrimaryDB and ReplicaDB return root pools on the servers (no database
// selected), owned by the pair.
func (p *Pair) PrimaryDB() *sql.DB { return p.pdb }

// ReplicaDB: see PrimaryDB.
func (p *Pair) ReplicaDB() *sql.DB { return p.rdb }

// StopReplication stops the replica's replication threads: it keeps what
// it has and receives nothing more until StartReplication.
func (p *Pair) StopReplication(ctx context.Context) error {
	if _, err := p.rdb.ExecContext(ctx, "STOP SLAVE"); err != nil {
		return fmt.Errorf("replica: STOP SLAVE: %w", err)
	}
	return nil
}

// StartReplication starts the replica's replication threads again.
func (p *Pair) StartReplication(ctx context.Context) error {
	if _, err := p.rdb.ExecContext(ctx, "START SLAVE"); err != nil {
		return fmt.Errorf("replica: START SLAVE: %w", err)
	}
	return nil
}

// WaitCaughtUp waits until the replica has applied everything the primary
// had written when it was called (its GTID position), or ctx ends (at the
// latest after 30 s). Replication must be running.
func (p *Pair) WaitCaughtUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var pos string
	if err := p.pdb.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		return fmt.Errorf("primary: read the GTID position: %w", err)
	}
	for {
		var res sql.NullInt64
		if err := p.rdb.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 1)", pos).Scan(&res); err != nil {
			return fmt.Errorf("replica: wait for GTID %s: %w", pos, err)
		}
		if res.Valid && res.Int64 == 0 {
			return nil
		}
		if ctx.Err() != nil {
			var io, sqlState, lastErr string
			_ = p.rdb.QueryRowContext(context.Background(),
				"SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_RUNNING'), @@gtid_slave_pos, ''").Scan(&io, &sqlState, &lastErr)
			return fmt.Errorf("replica did not reach the primary's GTID position %s (slave running: %s, at %s): %w", pos, io, sqlState, ctx.Err())
		}
	}
}

// CreateUser creates, on the primary (and so on the replica), a user of
// the given name with every privilege and no password, reachable from
// 127.0.0.1: a test counts the connections of one client by its user.
func (p *Pair) CreateUser(ctx context.Context, name string) error {
	for _, q := range []string{
		"CREATE USER IF NOT EXISTS '" + name + "'@'127.0.0.1'",
		"GRANT ALL ON *.* TO '" + name + "'@'127.0.0.1'",
	} {
		if _, err := p.pdb.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("primary: %s: %w", q, err)
		}
	}
	return p.WaitCaughtUp(ctx)
}
