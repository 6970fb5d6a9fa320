// Package whycache is a shared-memory key/value cache for fleets of Linux
// machines. Every process on a machine maps one state file, so a Get is a
// plain memory read: no lock, no system call, no network. Writes are
// committed to a change log, a logstore.Store (FileStore: files in a
// directory; MySQLStore: a MySQL or MariaDB table), and every machine
// applies the log in id order, so all machines converge. An Instance is
// one process's handle on a state file and a log; Follow keeps a machine's
// state in step, RewriteHistory keeps the log compact, and snapshots let a
// new machine start without replaying the log.
//
// The layers below, each documented in its own package: shm (the mapped,
// crash-safe state file: a seqlock for readers, one writer at a time),
// prefixtree (the ordered map inside it), logstore (the log contract, the
// record encoding and the conformance suite every store passes),
// internal/filestore and internal/mysqlstore (the two stores; this
// package's FileStore and MySQLStore are their types).
//
// # The data path
//
// A write, Set (or SetMulti, Delete, DeleteMulti) on machine A:
//
//  1. Pack (instance_write.go). The items are checked and encoded into
//     records of at most Options.MaxUpdateSize bytes. Nothing is written
//     when one is invalid.
//  2. Commit. The identity of the log the state was filled from is read
//     through the seqlock (meta.go), and Store.Commit appends the records
//     atomically under a new nonce, refusing, under the store's lock, a
//     log of another identity. Concurrent commits share one write and one
//     sync (the file store) or one transaction (MySQL). Until the commit
//     returns, nothing local has changed.
//  3. Local apply (apply.go). When the commit directly follows the
//     state's position, its records are applied from memory in one batch
//     and the state claims the commit's last id; when other commits lie
//     between, the state catches up from the log as Update does, which
//     brings the commit along. Every process mapping the state sees the
//     change when the batch commits; other machines see it after their
//     next Update.
//
// An update, Update on machine B (Follow calls it every interval):
//
//  1. Read (instance_update.go). One Store.Poll reads, in one consistent
//     snapshot of the log, its identity, its compaction horizon, its
//     latest position, the verdict on the state's position (the id and
//     commit nonce of the last record it applied) and the records after
//     it, a page at a time. No batch of the state is open meanwhile.
//  2. Judge. A log of another identity, one compacted past the state or
//     one that went backwards (the verdict) cannot be tailed: the state is
//     rebuilt from the whole log beside the live one and swapped in
//     (instance_state.go), or Update fails, as Options.Rebuild says.
//  3. Apply (apply.go). The records go through the same routine as a
//     local apply, in batches that readers see whole: each batch checks
//     the state's log identity, skips the records at or below the state's
//     position (another process applied them), and moves the position;
//     the last one claims the latest id of the poll's snapshot.
//
// A read, Get on any process of either machine: a lookup in the mapped
// state between two reads of its seqlock counter, the value copied out
// (instance.go, then prefixtree). A batch in progress makes it retry, or
// wait, at most Options.ReadTimeout for a writer that makes no progress.
//
// # Locks
//
// A holder of one of these locks takes only locks further down the list:
//
//  1. The follow lock, an flock on STATE.follow, held by the one follower
//     that polls for as long as it leads; only ever tried, never waited
//     for.
//  2. Instance.updateMu, which serializes this process's Updates,
//     rebuilds, snapshot loads and deletes of the state.
//  3. The swap lock, an flock on STATE.lock, held while a state file is
//     replaced, deleted or put back.
//  4. Instance.mu, held while the state in use is opened or swapped.
//  5. A state's writer lock (a prefixtree batch: shm's in-process mutex,
//     then its open file description lock): the live state's first,
//     then, in a rebuild's or snapshot load's catch-up, the new file's.
//  6. The store's locks: the file store's commit queue, its writer lock
//     (an in-process semaphore, then an flock on DIR/lock) and the
//     mutexes of its caches; the MySQL store's queue and statement
//     mutexes and, in the server, the counter row a commit locks.
//
// The flocks of temporary state files are only ever tried. Waits for a
// lock that can be held for long honour the caller's context (flock.Lock,
// ctxsync.Mutex, shm's BeginContext, the file store's writer lock).
//
// I/O under locks: a batch never spans store I/O. Records are read first
// and applied after, so readers never wait on the network or a disk read
// of the log. The one place a state's writer lock is held across store
// I/O is the catch-up of a new state file before it replaces the live one
// (so that it misses nothing the live one holds): the live state's
// writers wait, its readers do not. Stores call back (ReadUpdates, Poll,
// Compact) with none of their locks held, so a callback may take a
// state's writer lock, as a history rewrite does. Instance.mu is held
// while a state file is opened and mapped, never across store I/O.
//
// # Errors
//
// errors.go lists this package's sentinels, each with when it is
// returned, and the rule of the messages: every package names itself
// once, this one first.
package whycache
