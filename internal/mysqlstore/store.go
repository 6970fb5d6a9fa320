package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whycache/whycache/logstore"
)

// ErrCommitUnknown is wrapped by the error Store.Commit returns when
// the connection failed while the server was committing: the records may
// or may not be in the log. The message names the ids they hold and the
// nonce they carry if the commit took effect; a later Poll with After at
// the last of those ids and that nonce shows the truth (VerdictMatch if it
// did, even after newer single-key records replaced them: the commit's
// mark stays).
var ErrCommitUnknown = errors.New("mysqlstore: commit outcome unknown")

// Default tunables of Options (used where a field is zero).
const (
	defaultMaxBatchRows      = 10000
	defaultMaxBatchBytes     = 8 << 20
	defaultMaxStatementRows  = 1000
	defaultPageRows          = 1000
	defaultPageBytes         = 8 << 20
	defaultMaxAttempts       = 10
	defaultRetryBaseDelay    = 5 * time.Millisecond
	defaultRetryMaxDelay     = 500 * time.Millisecond
	fallbackMaxAllowedPacket = 4 << 20

	// maxStatementRows keeps a statement's placeholders (up to 4 per
	// row) below the server's limit of 65,535.
	maxStatementRows = 16000
)

// Options are the tunables of a Store. The zero value gives
// the defaults. Options are fixed when the store is built.
type Options struct {
	// MaxBatchRows caps the records one group-commit transaction takes
	// from waiting Commit calls; 0 means 10,000. A single Commit with more
	// records still gets a transaction of its own.
	MaxBatchRows int

	// MaxBatchBytes caps the contents bytes one group-commit transaction
	// takes from waiting Commit calls, and the replacement bytes one
	// Compact transaction writes; 0 means 8 MiB. A single larger Commit
	// still gets a transaction of its own.
	MaxBatchBytes int

	// MaxStatementRows caps the rows of one multi-row statement; 0 means
	// 1,000; at most 16,000.
	MaxStatementRows int

	// MaxStatementBytes caps the estimated size of one statement; 0 means
	// the server's max_allowed_packet less a margin. It is never raised
	// above that. A single row larger than the cap is sent alone.
	MaxStatementBytes int

	// MaxAllowedPacket is the server's max_allowed_packet; 0 means ask the
	// server once, on first need.
	MaxAllowedPacket int

	// PageRows is the number of rows ReadUpdates and Compact fetch per
	// query; 0 means 1,000.
	PageRows int

	// PageBytes is a soft cap on the contents bytes buffered per page; 0
	// means 8 MiB. A page that reaches it ends early and the next pages
	// fetch fewer rows.
	PageBytes int

	// NoGroupCommit makes every Commit call run its own transaction
	// instead of sharing one with concurrent calls (the baseline of the
	// group-commit benchmark).
	NoGroupCommit bool

	// MaxAttempts is how many times a transaction is tried when the server
	// reports a deadlock (1213) or a lock wait timeout (1205); 0 means 10,
	// 1 means no retry.
	MaxAttempts int

	// RetryBaseDelay and RetryMaxDelay bound the jittered exponential
	// backoff between attempts; 0 means 5 ms and 500 ms.
	RetryBaseDelay, RetryMaxDelay time.Duration

	// ReadDB, when not nil, is the pool the reads go to: typically a
	// replica of the primary that New's db reaches. Poll (unless
	// PollRequest.Primary), LatestUpdateID, Info, ReadUpdates and Check
	// read from it; Commit, Compact, Reset, CreateTable, CheckServer and
	// Heartbeat use the primary. Reads never write: a replica without
	// the log fails with logstore.ErrNoLog ("run init-schema on the
	// primary"). The first Poll on ReadDB, every one that shows a log
	// identity other than the primary's last known one, and the first
	// after a minute, ask the primary for its identity (one small
	// statement);
	// a read pool on another log fails with ErrReplicaMismatch. nil reads from db. The store never
	// closes it.
	ReadDB *sql.DB

	// Format is the layout of the log: FormatGo (the default, schema.sql)
	// or FormatPython, Python whycache's table as Python created it (see
	// the package documentation, "Python mode"). Each format refuses a
	// table of the other.
	Format Format

	// HoleTimeout is, in Python mode, how long a reader waits for a hole
	// (an id missing below a higher one) to fill before it passes it: 0
	// means 10 s. An insert whose transaction stays open longer than
	// that after a later id became visible is skipped by readers; a
	// hole that never fills (a rolled-back insert, a row a newer
	// single-key REPLACE removed) holds the records behind it back that
	// long. Go mode has no holes and ignores it.
	HoleTimeout time.Duration
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxBatchRows, defaultMaxBatchRows)
	def(&o.MaxBatchBytes, defaultMaxBatchBytes)
	def(&o.MaxStatementRows, defaultMaxStatementRows)
	o.MaxStatementRows = min(o.MaxStatementRows, maxStatementRows)
	def(&o.PageRows, defaultPageRows)
	def(&o.PageBytes, defaultPageBytes)
	def(&o.MaxAttempts, defaultMaxAttempts)
	if o.MaxStatementBytes < 0 {
		o.MaxStatementBytes = 0
	}
	if o.MaxAllowedPacket < 0 {
		o.MaxAllowedPacket = 0
	}
	if o.RetryBaseDelay <= 0 {
		o.RetryBaseDelay = defaultRetryBaseDelay
	}
	if o.RetryMaxDelay <= 0 {
		o.RetryMaxDelay = defaultRetryMaxDelay
	}
	if o.RetryMaxDelay < o.RetryBaseDelay {
		o.RetryMaxDelay = o.RetryBaseDelay
	}
	if o.HoleTimeout <= 0 {
		o.HoleTimeout = defaultHoleTimeout
	}
	return o
}

// Store is the log in one table and its meta and marks tables (see the
// package documentation for the commit protocol, the poll and the DSN it
// wants). It is safe for concurrent use by many goroutines, and any
// number of Stores in any number of processes may use one table. New
// returns one; Close stops it, leaving the *sql.DB open (it belongs to the
// caller).
type Store struct {
	db     *sql.DB // the primary: every write, and reads that must see them
	rdb    *sql.DB // the read pool: Options.ReadDB, or db
	table  string
	schema Schema  // the tables CreateTable makes, named as in schema.sql; never changes
	opts   Options // normalized by withDefaults; never changes
	q      queries // SQL texts for this table; never change
	py     *pyMode // Python mode's state; nil in Go mode; never changes

	closed atomic.Bool // set once by Close

	stmtMu   sync.Mutex            // guards stmts
	stmts    map[stmtKey]*sql.Stmt // prepared statements by pool and SQL text, made on first successful use; closed by Close
	pollWide atomic.Bool           // the last pollJoin returned no row: Poll starts with the poll statement (pollQuery)
	pollN    atomic.Int64          // rows the next Poll asks for (PageRows, less after a page reached PageBytes); 0 until the first Poll

	primaryID               atomic.Pointer[primaryIdentity] // the primary's log identity as last read by checkReplica; nil until then
	primaryClock, readClock atomicClock                     // the servers' clocks as last read by readTime (the read pool's in readClock when it has its own)

	packetMu  sync.Mutex // guards maxPacket
	maxPacket int        // server's max_allowed_packet; 0 until known

	mu      sync.Mutex     // guards queue and running; closed is set under it
	queue   []*commitReq   // Commit calls waiting for the committer, FIFO
	running bool           // a committer goroutine is running
	wg      sync.WaitGroup // committer goroutines and NoGroupCommit transactions; Close waits for them; Add only under mu while not closed

	// Test hooks, set only by tests before first use.
	hookBeforeCommit func(ctx context.Context, first, last uint64, batch []*commitReq) error // after the inserts, before COMMIT; an error rolls back
	hookRetry        func(attempt int, err error)                                            // before the backoff of a retried transaction
	hookStatement    func(rows, bytes int)                                                   // for every multi-row REPLACE
	hookBatch        func(requests, rows int)                                                // for every commit transaction attempt
	hookEnqueue      func()                                                                  // after a Commit call joined the queue
	identityTTL      time.Duration                                                           // how long checkReplica trusts the primary's identity; 0 means primaryIdentityTTL
}

var _ logstore.Store = (*Store)(nil)

// New returns a store on table (and table_meta, table_marks) in db, whose
// tables are those of schema (schema.sql). The table name must match
// ^[A-Za-z_][A-Za-z0-9_]{0,56}$; it is the only thing ever written into SQL
// text. No query runs until first use: CreateTable creates the log. The
// store uses db until Close and never closes it. db should run in
// autocommit (the default; see CheckServer).
func New(db *sql.DB, table string, schema Schema, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("mysqlstore: nil *sql.DB")
	}
	if err := validTable(table); err != nil {
		return nil, err
	}
	if opts.Format != FormatGo && opts.Format != FormatPython {
		return nil, fmt.Errorf("mysqlstore: unknown log format %v", opts.Format)
	}
	s := &Store{
		db:     db,
		table:  table,
		schema: schema,
		opts:   opts.withDefaults(),
		q:      newQueries(table),
		stmts:  map[stmtKey]*sql.Stmt{},
	}
	s.rdb = db
	if opts.ReadDB != nil {
		s.rdb = opts.ReadDB
	}
	s.maxPacket = s.opts.MaxAllowedPacket
	if opts.Format == FormatPython {
		s.py = newPyMode(table, s.opts.HoleTimeout)
	}
	return s, nil
}

// Table returns the name of the log table.
func (s *Store) Table() string { return s.table }

// checkUsable returns an error if the store is closed or ctx is done.
func (s *Store) checkUsable(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("mysqlstore: %w", logstore.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mysqlstore: %w", err)
	}
	return nil
}

// Close stops the store: Commit calls still waiting for a transaction fail
// with an error wrapping logstore.ErrClosed, a transaction in flight
// finishes first, the store's prepared statements are closed, and every
// later call fails with logstore.ErrClosed (including a second Close). A
// read in flight may fail with ErrClosed too. It does not close the
// *sql.DB.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return fmt.Errorf("mysqlstore: %w", logstore.ErrClosed)
	}
	s.closed.Store(true)
	waiting := s.queue
	s.queue = nil
	for _, r := range waiting {
		r.state = reqDropped
	}
	s.mu.Unlock()
	for _, r := range waiting {
		r.done <- commitResult{err: fmt.Errorf("mysqlstore: commit: %w", logstore.ErrClosed)}
	}
	s.wg.Wait()
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	var errs []error
	for q, st := range s.stmts {
		if err := st.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(s.stmts, q)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mysqlstore: close prepared statements: %w", err)
	}
	return nil
}

// stmtKey names a prepared statement: its pool and its SQL text.
type stmtKey struct {
	db    *sql.DB
	query string
}

// prepared returns the store's prepared statement for query on the pool
// db (s.db or s.rdb), preparing it (on one connection; database/sql
// prepares it again on each connection that runs it) on first use. A
// failed prepare is not remembered. After Close it fails with ErrClosed.
func (s *Store) prepared(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("mysqlstore: %w", logstore.ErrClosed)
	}
	k := stmtKey{db, query}
	if st := s.stmts[k]; st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[k] = st
	return st, nil
}

// hasReadPool reports whether reads go to a pool of their own.
func (s *Store) hasReadPool() bool { return s.rdb != s.db }
