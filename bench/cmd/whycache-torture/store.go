package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

// logRef says where a scenario run's log is: a file store directory or a
// MySQL table.
type logRef struct {
	dir     string // file store
	segment int64  // file store segment size (0: the default)
	dsn     string // MySQL
	table   string
}

// flags returns the writer flags naming the log (the DSN travels in the
// environment).
func (l logRef) flags() []string {
	if l.dir != "" {
		if l.segment != 0 {
			return []string{"--log", l.dir, "--segment-size", strconv.FormatInt(l.segment, 10)}
		}
		return []string{"--log", l.dir}
	}
	return []string{"--table", l.table}
}

// env returns the environment a writer needs.
func (l logRef) env() []string {
	if l.dsn == "" {
		return nil
	}
	return []string{dsnEnv + "=" + l.dsn}
}

// open opens the log; close releases the store and its database handle.
// A file store directory without a log gets a new, empty one.
func (l logRef) open() (store logstore.Store, close func(), err error) {
	return l.openOptions(false)
}

// openExisting opens the log like open, but a file store directory
// without a log is an error wrapping logstore.ErrNoLog instead of getting
// a new one (a MySQL log is never created by opening it).
func (l logRef) openExisting() (store logstore.Store, close func(), err error) {
	return l.openOptions(true)
}

func (l logRef) openOptions(noCreate bool) (store logstore.Store, close func(), err error) {
	if l.dir != "" {
		fs, err := whycache.NewFileStoreOptions(l.dir, whycache.FileStoreOptions{SegmentSize: l.segment, NoCreate: noCreate})
		if err != nil {
			return nil, nil, err
		}
		return fs, func() { fs.Close() }, nil
	}
	db, err := sql.Open("mysql", l.dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("whycache-torture: %w", err)
	}
	ms, err := whycache.NewMySQLStore(db, l.table)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return ms, func() { ms.Close(); db.Close() }, nil
}

// newLog creates the log of scenario run n and returns a function that
// removes it.
func newLog(ctx context.Context, cfg config, name string, n int) (logRef, func(), error) {
	if cfg.store == storeFile {
		dir, err := os.MkdirTemp(cfg.dir, "whycache-torture-"+name+"-")
		if err != nil {
			return logRef{}, nil, fmt.Errorf("whycache-torture: %w", err)
		}
		return logRef{dir: filepath.Join(dir, "log")}, func() { os.RemoveAll(dir) }, nil
	}
	ref := logRef{dsn: cfg.dsn, table: fmt.Sprintf("torture_%d_%s_%d", os.Getpid(), name, n)}
	db, err := sql.Open("mysql", cfg.dsn)
	if err != nil {
		return logRef{}, nil, fmt.Errorf("whycache-torture: %w", err)
	}
	ms, err := whycache.NewMySQLStore(db, ref.table)
	if err == nil {
		err = ms.CreateTable(ctx)
		ms.Close()
	}
	if err != nil {
		db.Close()
		return logRef{}, nil, err
	}
	drop := func() {
		for _, t := range []string{ref.table, ref.table + "_meta", ref.table + "_marks"} {
			db.ExecContext(context.Background(), "DROP TABLE IF EXISTS `"+t+"`")
		}
		db.Close()
	}
	return ref, drop, nil
}

// quietDriver stops the MySQL driver from logging every connection the
// outage scenario breaks on purpose (the failures are counted instead).
func quietDriver() { mysql.SetLogger(log.New(io.Discard, "", 0)) }

// withAddr returns dsn with its network address replaced and short
// timeouts, so that a connection through a cut proxy fails fast.
func withAddr(dsn, addr string) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("whycache-torture: --dsn: %w", err)
	}
	c.Net, c.Addr = "tcp", addr
	c.Timeout, c.ReadTimeout, c.WriteTimeout = timeoutDial, timeoutIO, timeoutIO
	return c.FormatDSN(), nil
}

// mysqlAddr returns the network address of dsn.
func mysqlAddr(dsn string) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("whycache-torture: --dsn: %w", err)
	}
	if c.Net != "tcp" {
		return "", fmt.Errorf("whycache-torture: the outage scenario needs a TCP DSN, not %q", c.Net)
	}
	return c.Addr, nil
}

// newRunFiles creates the log of scenario run n and a directory for its
// state files beside whycache's default state directory (on /dev/shm when
// it exists); cleanup removes both.
func newRunFiles(ctx context.Context, cfg config, name string, n int) (log logRef, dir string, cleanup func(), err error) {
	log, removeLog, err := newLog(ctx, cfg, name, n)
	if err != nil {
		return log, "", nil, err
	}
	dir, err = os.MkdirTemp(filepath.Dir(whycache.DefaultStateDir()), "whycache-torture-"+name+"-")
	if err != nil {
		removeLog()
		return log, "", nil, fmt.Errorf("whycache-torture: %w", err)
	}
	return log, dir, func() { os.RemoveAll(dir); removeLog() }, nil
}

// newStates creates count state files machine1.state, ... in dir, each
// filled from log, and returns their paths.
func newStates(ctx context.Context, dir string, log logRef, count int) ([]string, error) {
	var states []string
	for m := range count {
		state := filepath.Join(dir, fmt.Sprintf("machine%d.state", m+1))
		_, closeInst, err := openState(ctx, state, log, true)
		if err != nil {
			return nil, err
		}
		closeInst()
		states = append(states, state)
	}
	return states, nil
}
