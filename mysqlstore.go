package whycache

import (
	"database/sql"
	_ "embed" // schema.sql

	"github.com/whycache/whycache/internal/mysqlstore"
)

// mysqlSchema is schema.sql: the log table, its meta table and its marks
// table, named `whycache`, `whycache_meta` and `whycache_marks`, as every
// MySQLStore creates them (named after its table).
//
//go:embed schema.sql
var mysqlSchema mysqlstore.Schema

// MySQLStore is a log store (logstore.Store) kept in a MySQL or MariaDB
// table and two tables next to it (schema.sql): table_meta, one row with
// the log identity, the id counter, the compaction horizon and the latest
// commit; and table_marks, one row per commit, so that a commit stays
// verifiable after its rows were replaced or compacted away. Only
// CreateTable ("whycache init-schema", on the primary) creates or
// upgrades the tables; every other method fails with an error wrapping
// logstore.ErrNoLog when they are missing, and the reads never write, so
// they work on a read-only replica.
//
// Commit order equals id order: a commit takes its ids by updating the
// counter row (which also checks the log identity the writer expects) and
// holds that row lock until COMMIT, so a poller can never pass a record
// that commits later. Concurrent Commit calls share transactions (group
// commit); deadlocks and lock wait timeouts are retried. A Poll is one
// SELECT, read in one InnoDB snapshot. Keep autocommit on in the DSN; with
// interpolateParams=true also set maxAllowedPacket=0.
//
// Reads from a replica: with MySQLStoreOptions.ReadDB (a pool on a
// replica of db's server), Poll, LatestUpdateID, Info, ReadUpdates and
// Check read from ReadDB, and Update, Stats and Follow with them; Commit
// (Set and its siblings), Compact (RewriteHistory), Reset, CreateTable,
// CheckServer and Heartbeat use db, and a writer checks its own commits
// on the primary. The read path never writes: a replica where the log does
// not exist (init-schema not run, or not yet replicated) fails with an
// error wrapping logstore.ErrNoLog that says to run init-schema on the
// primary, and nothing is created. A read pool holding another log than
// the primary's (another server, database, or a replica behind a log
// recreated on the primary) is an error wrapping ErrReplicaMismatch and
// ErrLogMismatch, reported by the first poll: the primary's identity is
// read on the first poll of ReadDB, again whenever a poll shows another
// one, and at least once a minute.
//
// Honest replica lag: Heartbeat writes the primary's clock into the meta
// row (FollowOptions.Heartbeat; one follower of the fleet is enough), and
// every poll returns the heartbeat the snapshot holds (PollResult.Heartbeat)
// and the clock of the server it read (ReadTime: a reading of the
// server's clock, which polls that see a heartbeat make with one more
// small statement once a minute, carried forward by this machine's
// monotonic clock). Stats.ReadLagSeconds is their
// difference: it grows while the replica stalls, whether or not anything
// is committed.
//
// The poll statement reads nothing that changes without a write to the
// log's tables (not even the clock), so a server with the query cache on
// (query_cache_type=1) answers the followers that ask it the same
// question, as a fleet's do between two commits, from the cache.
//
// Its methods are those of logstore.Store, logstore.Checker (Check
// verifies the whole log) and logstore.Heartbeater, CreateTable,
// CheckServer (what in the server's settings can lose or reorder commits)
// and Table. A MySQLStore is safe
// for concurrent use, and any number of them in any number of processes
// may use one table. Close stops it; the *sql.DB stays open. The commit
// protocol in detail is the documentation of package internal/mysqlstore.
type MySQLStore = mysqlstore.Store

// MySQLStoreOptions are the tunables of a MySQLStore; the zero value gives
// the defaults. Fields (each documented in internal/mysqlstore): the group
// commit's MaxBatchRows (10,000) and MaxBatchBytes (8 MiB), and
// NoGroupCommit; the statements' MaxStatementRows (1,000) and
// MaxStatementBytes, below the server's MaxAllowedPacket (asked when 0);
// the reads' PageRows (1,000) and PageBytes (8 MiB); the retries of
// deadlocks and lock wait timeouts, MaxAttempts (10), RetryBaseDelay
// (5 ms) and RetryMaxDelay (500 ms); ReadDB, the pool reads go to (a
// replica; nil reads from the primary); the log's Format (FormatGo, or
// FormatPython for a table Python whycache writes) and, in Python mode,
// HoleTimeout (10 s).
type MySQLStoreOptions = mysqlstore.Options

// MySQLFormat is the layout of the log a MySQLStore works on
// (MySQLStoreOptions.Format).
type MySQLFormat = mysqlstore.Format

const (
	// FormatGo is the MySQLStore's own layout (schema.sql), the default.
	FormatGo = mysqlstore.FormatGo

	// FormatPython is Python mode: the store reads and writes the table of
	// Python whycache as Python created it (an AUTO_INCREMENT id,
	// single_key, contents; no other table), in Python's framing, so Go
	// and Python processes share one log. Readers wait for holes (ids
	// committed out of order) up to HoleTimeout; positions are checked by
	// id only; a value must not be empty (Python reads an empty value as
	// a delete: ErrNotRepresentable); a rewrite keeps every delete marker
	// nothing supersedes and cannot drop keys. The package documentation
	// of internal/mysqlstore, "Python mode", has the details.
	FormatPython = mysqlstore.FormatPython
)

// NewMySQLStore returns a store on table (and table_meta, table_marks) in
// db with the default options. See NewMySQLStoreOptions.
func NewMySQLStore(db *sql.DB, table string) (*MySQLStore, error) {
	return mysqlstore.New(db, table, mysqlSchema, mysqlstore.Options{})
}

// NewMySQLStoreOptions returns a store on table (and table_meta,
// table_marks) in db. The table name must match
// ^[A-Za-z_][A-Za-z0-9_]{0,56}$. No query runs until first use:
// CreateTable creates the log. The store uses db until Close and never
// closes it.
func NewMySQLStoreOptions(db *sql.DB, table string, opts MySQLStoreOptions) (*MySQLStore, error) {
	return mysqlstore.New(db, table, mysqlSchema, opts)
}

// MySQLSchemaFor returns the text of schema.sql (the statements
// CreateTable runs) with the tables named table, table_meta and
// table_marks, or an error if table is not a valid name.
// MySQLSchemaFor("whycache") is schema.sql as is.
func MySQLSchemaFor(table string) (string, error) { return mysqlSchema.For(table) }
