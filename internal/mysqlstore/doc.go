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
package mysqlstore
