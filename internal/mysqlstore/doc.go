// Package mysqlstore is the MySQL store: a logstore.Store that keeps the
// log in a MySQL or MariaDB table and two tables next to it
// (whycache.MySQLStore is this package's Store). Their definitions are
// schema.sql at the module root, which the whycache package embeds and
// gives to New as a Schema: the log table, one row per record (id, nonce,
// single key, contents); table_meta, one row with the log identity, the
// id counter, the compaction horizon and the nonce and time of the latest
// commit; and table_marks, one row per commit transaction (its last id,
// nonce and time), so that a commit stays verifiable after its rows were
// replaced or compacted away. Only CreateTable ("whycache init-schema", on
// the primary) creates or upgrades the tables and the meta row; every
// other method fails with an error wrapping logstore.ErrNoLog when they
// are missing, and the read methods (Info, LatestUpdateID, ReadUpdates,
// Poll, Check) never write, so they work on a read-only replica.
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
// A Store is safe for concurrent use by many goroutines, and any
// number of stores in any number of processes may use one table. Close
// stops it; the *sql.DB stays open (it belongs to the caller).
//
// The DSN of the pool: keep autocommit on (the default). The DSN option
// interpolateParams=true saves a round trip per REPLACE statement; use it
// with maxAllowedPacket=0, which makes the driver send statements larger
// than the server's max_allowed_packet as prepared statements instead of
// text. Without that, a record close to Limits().MaxRecordSize whose
// bytes need escaping can fail with error 1153 (nothing is committed).
//
// # Python mode
//
// With Options.Format = FormatPython the store works on the table of
// Python whycache (fuzziqersoftware's, MySQLWhycacheInstance) exactly as
// Python created it: id BIGINT NOT NULL AUTO_INCREMENT, single_key
// VARBINARY(1024) unique, contents MEDIUMBLOB; no other table is read or
// created. CreateTable creates that table (PythonSchema) only if it is
// missing. A table with a meta table or an id without AUTO_INCREMENT (a Go
// log) is refused, as Go mode refuses Python's table; a row in the Go
// framing is ErrCorrupt.
//
// Writing: records are stored in the Python framing (logstore's
// AppendPythonRecord; an empty value means delete there, so a set of an
// empty value fails with logstore.ErrNotRepresentable before anything is
// sent). A commit is one multi-row REPLACE INTO t (single_key, contents)
// in autocommit, the statement Python runs for one record: the ids come
// from AUTO_INCREMENT (consecutive within one statement under
// innodb_autoinc_lock_mode 0 or 1; under 2, a commit of several records
// is refused), and a single-key record removes the older row of its key.
// The rows of a commit of several records become visible together (a
// reader applying them may still show them in parts: nonces are 0, so it
// cannot tell where a commit ends); a commit must fit
// one statement (max_allowed_packet). There is no group commit.
//
// Reading: AUTO_INCREMENT ids are taken when a statement runs and
// committed in another order, so a row may appear below ids a reader has
// already seen. Poll reads MAX(id) and the rows after the position in one
// statement and delivers them only up to the first hole (an id missing
// below a present one) it cannot rule out yet. A hole may still fill (an
// insert whose transaction is open) or never (a rolled-back insert, a
// row a newer single-key REPLACE removed, a row a rewrite dropped); the
// store cannot tell, so it waits: a hole is passed once a poll of this
// store saw a higher id at least HoleTimeout (10 s by default) before.
// That wait is kept per Store, in memory: a new process waits once for
// the holes it meets. An insert whose transaction stays open longer than
// HoleTimeout after a later id became visible is passed over at first;
// the store keeps the holes it passed (passedHoles, late.go) and checks
// them once per HoleTimeout, and a row found in one makes the polls of the
// readers past it a mismatch with a Detail, so they rebuild; a new store
// takes the holes below its first reader's position (seedWindow ids) as
// passed, for those an earlier process passed. HoleTimeout
// should still exceed the longest write transaction on the table
// (Python's are single autocommit statements; lock waits count): a
// rebuild replays the whole table. A probe
// that tells an open insert from a gone row (a locking read of the
// missing id, or the server's transaction list) is not used: an id is
// taken before its row is inserted, so a locking read can miss it, and
// the transaction list needs the PROCESS privilege and says nothing on a
// replica.
//
// Positions: nonces are 0, so a position is checked by id only: a log
// restored from a backup is detected only when its highest id is below
// the reader's position. The log identity is derived from the server's
// @@hostname and @@port, the database and the table, so it survives
// Reset but changes when the log moves to another server. There is no
// compaction horizon: Compact refuses to raise one, and the records it
// rewrites keep the Python framing and their ids. Reset deletes every row;
// ids go on from AUTO_INCREMENT.
package mysqlstore
