package main

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

// Store kinds of --store.
const (
	storeFile  = "file"
	storeMySQL = "mysql"
)

// storeSpec is a parsed --store value.
type storeSpec struct {
	kind string // storeFile or storeMySQL
	arg  string // the directory or the DSN
}

// parseStore parses "file:DIR" or "mysql:DSN". Its errors never show a
// password.
func parseStore(s string) (storeSpec, error) {
	if s == "" {
		return storeSpec{}, usageErrorf("no log store: pass --store file:DIR or --store mysql:DSN, or set WHYCACHE_STORE")
	}
	kind, arg, ok := strings.Cut(s, ":")
	switch {
	case ok && kind == storeFile && arg != "":
		return storeSpec{kind: kind, arg: arg}, nil
	case ok && kind == storeMySQL && arg != "":
		// The driver's own parse errors can quote the part of the DSN it
		// took for an address or option, which may hold the password: they
		// are not shown.
		if _, err := mysql.ParseDSN(arg); err != nil {
			return storeSpec{}, usageErrorf("--store %s: invalid DSN: want mysql:user@tcp(host:3306)/database[?options] (a password is best given by $%s or --password-file)", redactDSN(s), passwordEnv)
		}
		return storeSpec{kind: kind, arg: arg}, nil
	}
	return storeSpec{}, usageErrorf("--store %q: want file:DIR or mysql:DSN", redactDSN(s))
}

// String describes the store for messages, without a password.
func (s storeSpec) String() string {
	if s.kind == storeMySQL {
		return "mysql:" + redactDSN(s.arg)
	}
	return s.kind + ":" + s.arg
}

// session is an open store and instance for one command. close releases
// both (and the MySQL pool).
type session struct {
	spec     storeSpec
	readSpec storeSpec // --read-store, when given
	table    string
	store    logstore.Store
	file     *whycache.FileStore  // when spec.kind is storeFile
	mysql    *whycache.MySQLStore // when spec.kind is storeMySQL
	db       *sql.DB              // the pool of mysql
	inst     *whycache.Instance
	closers  []func() error
}

// openStore opens the log store the global flags name. Only init-schema
// (and the demo, on its own directory) creates a log: every other command
// on a directory that holds none is told how to create one.
func (e *env) openStore() (*session, error) {
	spec, err := parseStore(e.g.store)
	if err != nil {
		return nil, err
	}
	s := &session{spec: spec, table: e.g.table}
	switch spec.kind {
	case storeFile:
		if e.g.readStore != "" {
			return nil, usageErrorf("--read-store %s: a read pool needs a mysql --store (the log is %s)", redactDSN(e.g.readStore), spec)
		}
		fs, err := whycache.NewFileStoreOptions(spec.arg, whycache.FileStoreOptions{NoCreate: !e.createLog})
		if err != nil {
			return nil, wrap(err, "open %s", spec)
		}
		s.file, s.store = fs, fs
		s.closers = append(s.closers, fs.Close)
	case storeMySQL:
		db, err := e.openMySQL("--store", spec)
		if err != nil {
			return nil, err
		}
		s.db = db
		s.closers = append(s.closers, db.Close)
		opts := whycache.MySQLStoreOptions{Format: whycache.FormatGo}
		if e.g.format == formatPython {
			opts.Format = whycache.FormatPython
		}
		if e.g.readStore != "" {
			rspec, err := parseReadStore(e.g.readStore)
			if err != nil {
				s.close()
				return nil, err
			}
			rdb, err := e.openMySQL("--read-store", rspec)
			if err != nil {
				s.close()
				return nil, err
			}
			s.closers = append(s.closers, rdb.Close)
			s.readSpec, opts.ReadDB = rspec, rdb
			if e.oneConn && !e.keepPrimary {
				// A follower of a replica uses the primary rarely (an
				// identity check a minute, a state ahead of its
				// replica): no connection is kept there between uses.
				db.SetMaxIdleConns(0)
			}
		}
		ms, err := whycache.NewMySQLStoreOptions(db, e.g.table, opts)
		if err != nil {
			s.close()
			return nil, withCode(exitUsage, wrap(err, "--table %q", e.g.table))
		}
		s.mysql, s.store = ms, ms
		s.closers = append(s.closers, ms.Close)
	}
	return s, nil
}

// parseReadStore parses --read-store: "mysql:DSN" only.
func parseReadStore(v string) (storeSpec, error) {
	spec, err := parseStore(v)
	if err != nil {
		return storeSpec{}, usageErrorf("--read-store: %v", strings.TrimPrefix(err.Error(), "--store "))
	}
	if spec.kind != storeMySQL {
		return storeSpec{}, usageErrorf("--read-store %s: want mysql:DSN (a replica of the --store server)", spec)
	}
	return spec, nil
}

// Pool settings of the commands that only follow the log (oneConn):
// one connection per server, closed once unused for followerIdleTime
// (database/sql looks every followerIdleTime, so it goes after 3 to 6 s):
// a follower polling every second or faster keeps its connection, one
// polling every 10 s holds none between polls (a reconnect costs a
// handshake every 10 s; a held connection costs the server a thread or
// a pool slot all the time).
const followerIdleTime = 3 * time.Second

// openMySQL opens a pool on the MySQL DSN of spec, given by flag (for
// messages, which never show a password), with the password of
// $WHYCACHE_PASSWORD or --password-file when the DSN has none. For the
// commands that only follow the log (e.oneConn) the pool holds at most one
// connection, closed after followerIdleTime unused; writers keep
// database/sql's defaults.
func (e *env) openMySQL(flag string, spec storeSpec) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(spec.arg)
	if err != nil {
		return nil, usageErrorf("%s %s: invalid DSN", flag, spec)
	}
	if err := e.applyPassword(cfg); err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, usageErrorf("%s %s: invalid DSN settings", flag, spec)
	}
	db := sql.OpenDB(conn)
	if e.oneConn {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxIdleTime(followerIdleTime)
	}
	return db, nil
}

// open opens the store and the instance on the state file the global
// flags name.
func (e *env) open() (*session, error) {
	s, err := e.openStore()
	if err != nil {
		return nil, err
	}
	inst, err := e.openInstance(s.store, false)
	if err != nil {
		s.close()
		return nil, err
	}
	if e.notif != nil {
		s.closers = append(s.closers, e.notif.Close)
	}
	s.inst = inst
	s.closers = append(s.closers, inst.Close)
	return s, nil
}

// openInstance opens the instance on store with the options the global
// flags give.
func (e *env) openInstance(store logstore.Store, readOnly bool) (*whycache.Instance, error) {
	opts := whycache.Options{StatePath: e.g.state, Name: e.g.name, ReadTimeout: e.g.readTimeout, ReadOnly: readOnly}
	if e.rebuild {
		opts.Rebuild = whycache.RebuildAnyLog
	}
	var err error
	if opts.TrustedUIDs, opts.TrustedGIDs, err = e.g.trusted(); err != nil {
		return nil, err
	}
	if opts.FileMode, err = e.g.stateFileMode(); err != nil {
		return nil, err
	}
	if e.g.notify != "" && !readOnly {
		n, err := e.notifier()
		if err != nil {
			return nil, err
		}
		e.notif, opts.Notifier = n, n
	}
	inst, err := whycache.Open(store, opts)
	switch {
	case errors.Is(err, whycache.ErrUnsafe):
		return nil, err
	case err != nil:
		return nil, withCode(exitUsage, err)
	}
	return inst, nil
}

// openFor opens a session for a read command: on the log when it must use
// it (withLog), else on the local state alone, read-only (openLocal).
func (e *env) openFor(withLog bool) (*session, error) {
	if withLog {
		return e.open()
	}
	return e.openLocal()
}

// close releases what the session opened, last opened first.
func (s *session) close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil && !errors.Is(err, logstore.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// describe names the store in messages ("file:/dir", "mysql:u:xxxxx@.../db
// table whycache").
func (s *session) describe() string {
	if s.spec.kind == storeMySQL && s.readSpec.kind != "" {
		return s.spec.String() + " table " + s.table + ", read from " + s.readSpec.String()
	}
	if s.spec.kind == storeMySQL {
		return s.spec.String() + " table " + s.table
	}
	return s.spec.String()
}

// requireValid fails with advice when the state was never filled.
func (s *session) requireValid(what string) error {
	st, err := s.inst.Stats(nil)
	if errors.Is(err, fs.ErrNotExist) {
		return missingState(what, s.inst.StatePath())
	}
	if err != nil {
		return wrap(err, "%s", what)
	}
	if st.Valid {
		return nil
	}
	return fmt.Errorf("%s: the state %s was never filled from the log: run 'whycache update' first (or pass --update)", what, s.inst.StatePath())
}
