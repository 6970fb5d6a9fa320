package whycache

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

// ErrCommitUnknown is wrapped by the error MySQLStore.Commit returns when
// the connection failed while the server was committing: the records may
// or may not be in the log. The message names the ids they hold and the
// nonce they carry if the commit took effect; a later Poll with After at
// the last of those ids and that nonce shows the truth (VerdictMatch if it
// did, even after newer single-key records replaced them: the commit's
// mark stays).
var ErrCommitUnknown = errors.New("whycache: mysqlstore: commit outcome unknown")

// Default tunables of MySQLStoreOptions (used where a field is zero).
const (
	myDefaultMaxBatchRows      = 10000
	myDefaultMaxBatchBytes     = 8 << 20
	myDefaultMaxStatementRows  = 1000
	myDefaultPageRows          = 1000
	myDefaultPageBytes         = 8 << 20
	myDefaultMaxAttempts       = 10
	myDefaultRetryBaseDelay    = 5 * time.Millisecond
	myDefaultRetryMaxDelay     = 500 * time.Millisecond
	myFallbackMaxAllowedPacket = 4 << 20

	// myMaxStatementRows keeps a statement's placeholders (up to 4 per
	// row) below the server's limit of 65,535.
	myMaxStatementRows = 16000
)

// MySQLStoreOptions are the tunables of a MySQLStore. The zero value gives
// the defaults. Options are fixed when the store is built.
type MySQLStoreOptions struct {
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
}

// withDefaults returns o with every zero field set to its default.
func (o MySQLStoreOptions) withDefaults() MySQLStoreOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxBatchRows, myDefaultMaxBatchRows)
	def(&o.MaxBatchBytes, myDefaultMaxBatchBytes)
	def(&o.MaxStatementRows, myDefaultMaxStatementRows)
	o.MaxStatementRows = min(o.MaxStatementRows, myMaxStatementRows)
	def(&o.PageRows, myDefaultPageRows)
	def(&o.PageBytes, myDefaultPageBytes)
	def(&o.MaxAttempts, myDefaultMaxAttempts)
	if o.MaxStatementBytes < 0 {
		o.MaxStatementBytes = 0
	}
	if o.MaxAllowedPacket < 0 {
		o.MaxAllowedPacket = 0
	}
	if o.RetryBaseDelay <= 0 {
		o.RetryBaseDelay = myDefaultRetryBaseDelay
	}
	if o.RetryMaxDelay <= 0 {
		o.RetryMaxDelay = myDefaultRetryMaxDelay
	}
	if o.RetryMaxDelay < o.RetryBaseDelay {
		o.RetryMaxDelay = o.RetryBaseDelay
	}
	return o
}

// MySQLStore is a logstore.Store that keeps the log in a MySQL or MariaDB
// table and two tables next to it (see schema.sql): table_meta, one row
// with the log identity, the id counter, the compaction horizon and the
// nonce and time of the latest commit; and table_marks, one row per commit
// transaction (its last id, nonce and time), so that a commit stays
// verifiable after its rows were replaced or compacted away. Only
// CreateTable ("whycache init-schema", on the primary) creates or upgrades
// the tables and the meta row; every other method fails with an error
// wrapping logstore.ErrNoLog when they are missing, and the read methods
// (Info, LatestUpdateID, ReadUpdates, Poll, Check) never write, so they
// work on a read-only replica.
//
// Commit order equals id order: a writing transaction first runs one
// UPDATE of the counter row that takes its ids, checks the expected log
// identity (in its WHERE clause) and sets the latest nonce and time; that
// row lock is held until COMMIT, so the next writer takes ids only after
// the previous one committed or rolled back. Then the transaction REPLACEs
// its records with their nonce and inserts its mark. Concurrent Commit
// calls on one store share transactions (group commit) and their nonce.
// Deadlocks and lock wait timeouts are retried with backoff, each attempt
// a whole new transaction with a new nonce.
//
// Poll reads everything it returns with one SELECT (one InnoDB read view):
// the meta row, the trace its verdict needs and the records up to the
// latest id of that same view, so a single-key REPLACE cannot slip
// between reading the latest id and reading the rows. It is prepared once
// per connection and costs one round trip.
//
// A MySQLStore is safe for concurrent use by many goroutines, and any
// number of stores in any number of processes may use one table. Close
// stops it; the *sql.DB stays open (it belongs to the caller).
//
// The DSN of the pool: keep autocommit on (the default). The DSN option
// interpolateParams=true saves a round trip per REPLACE statement; use it
// with maxAllowedPacket=0, which makes the driver send statements larger
// than the server's max_allowed_packet as prepared statements instead of
// text. Without that, a record close to Limits().MaxRecordSize whose
// bytes need escaping can fail with error 1153 (nothing is committed).
type MySQLStore struct {
	db    *sql.DB
	table string
	opts  MySQLStoreOptions // normalized by withDefaults; never changes
	q     myQueries         // SQL texts for this table; never change

	closed atomic.Bool // set once by Close

	stmtMu sync.Mutex           // guards stmts
	stmts  map[string]*sql.Stmt // prepared statements by SQL text, made on first successful use; closed by Close
	pollN  atomic.Int64         // rows the next Poll asks for (PageRows, less after a page reached PageBytes); 0 until the first Poll

	packetMu  sync.Mutex // guards maxPacket
	maxPacket int        // server's max_allowed_packet; 0 until known

	mu      sync.Mutex     // guards queue and running; closed is set under it
	queue   []*myCommitReq // Commit calls waiting for the committer, FIFO
	running bool           // a committer goroutine is running
	wg      sync.WaitGroup // committer goroutines and NoGroupCommit transactions; Close waits for them; Add only under mu while not closed

	// Test hooks, set only by tests before first use.
	hookBeforeCommit func(ctx context.Context, first, last uint64, batch []*myCommitReq) error // after the inserts, before COMMIT; an error rolls back
	hookRetry        func(attempt int, err error)                                              // before the backoff of a retried transaction
	hookStatement    func(rows, bytes int)                                                     // for every multi-row REPLACE
	hookBatch        func(requests, rows int)                                                  // for every commit transaction attempt
	hookEnqueue      func()                                                                    // after a Commit call joined the queue
}

var _ logstore.Store = (*MySQLStore)(nil)

// NewMySQLStore returns a store on table (and table_meta, table_marks) in
// db with the default options. See NewMySQLStoreOptions.
func NewMySQLStore(db *sql.DB, table string) (*MySQLStore, error) {
	return NewMySQLStoreOptions(db, table, MySQLStoreOptions{})
}

// NewMySQLStoreOptions returns a store on table (and table_meta,
// table_marks) in db. The table name must match
// ^[A-Za-z_][A-Za-z0-9_]{0,56}$; it is the only thing ever written into SQL
// text. No query runs until first use: CreateTable creates the log. The
// store uses db until Close and never closes it. db should run in
// autocommit (the default; see CheckServer).
func NewMySQLStoreOptions(db *sql.DB, table string, opts MySQLStoreOptions) (*MySQLStore, error) {
	if db == nil {
		return nil, errors.New("whycache: mysqlstore: nil *sql.DB")
	}
	if err := myValidTable(table); err != nil {
		return nil, err
	}
	s := &MySQLStore{
		db:    db,
		table: table,
		opts:  opts.withDefaults(),
		q:     myNewQueries(table),
		stmts: map[string]*sql.Stmt{},
	}
	s.maxPacket = s.opts.MaxAllowedPacket
	return s, nil
}

// Table returns the name of the log table.
func (s *MySQLStore) Table() string { return s.table }

// myCheck returns an error if the store is closed or ctx is done.
func (s *MySQLStore) myCheck(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("whycache: mysqlstore: %w", logstore.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("whycache: mysqlstore: %w", err)
	}
	return nil
}

// Close stops the store: Commit calls still waiting for a transaction fail
// with an error wrapping logstore.ErrClosed, a transaction in flight
// finishes first, the store's prepared statements are closed, and every
// later call fails with logstore.ErrClosed (including a second Close). A
// read in flight may fail with ErrClosed too. It does not close the
// *sql.DB.
func (s *MySQLStore) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return fmt.Errorf("whycache: mysqlstore: %w", logstore.ErrClosed)
	}
	s.closed.Store(true)
	waiting := s.queue
	s.queue = nil
	for _, r := range waiting {
		r.state = myReqDropped
	}
	s.mu.Unlock()
	for _, r := range waiting {
		r.done <- myCommitResult{err: fmt.Errorf("whycache: mysqlstore: commit: %w", logstore.ErrClosed)}
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
		return fmt.Errorf("whycache: mysqlstore: close prepared statements: %w", err)
	}
	return nil
}

// myStmt returns the store's prepared statement for query, preparing it
// (on one connection; database/sql prepares it again on each connection
// that runs it) on first use. A failed prepare is not remembered. After
// Close it fails with ErrClosed.
func (s *MySQLStore) myStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("whycache: mysqlstore: %w", logstore.ErrClosed)
	}
	if st := s.stmts[query]; st != nil {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[query] = st
	return st, nil
}
