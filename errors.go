package whycache

import (
	"errors"
	"fmt"
	"strings"

	"github.com/whycache/whycache/internal/mysqlstore"
	"github.com/whycache/whycache/internal/statedir"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
	"github.com/whycache/whycache/shm"
)

// Sentinel errors. Errors returned by this package wrap one of these where
// the condition applies; test with errors.Is.
var (
	// ErrNotFound is returned by Get when the key is not in the state, or
	// its item has expired.
	ErrNotFound = errors.New("whycache: key not found")

	// ErrBadTTL is returned by SetWithTTL for a ttl of zero or less, and by
	// SetMulti for an Item whose ExpiresAt is not after the Unix epoch;
	// nothing is committed.
	ErrBadTTL = errors.New("whycache: invalid expiry")

	// ErrLoadPanicked is returned by GetOrLoad to the callers that waited
	// for a load that panicked (the caller whose load panicked gets the
	// panic).
	ErrLoadPanicked = errors.New("whycache: load panicked")

	// ErrTxnDone is returned by the methods of a Txn used after its
	// function returned.
	ErrTxnDone = errors.New("whycache: transaction already ended")

	// ErrEmptyKey is returned when a key is empty. Keys are non-empty byte
	// strings.
	ErrEmptyKey = errors.New("whycache: empty key")

	// ErrTooLarge is returned when an item does not fit in one log record
	// of Options.MaxUpdateSize bytes, or in the state file.
	ErrTooLarge = errors.New("whycache: item too large")

	// ErrInvalidState is returned by reads while the shared state has never
	// been filled (no successful Update or LoadSnapshot since it was
	// created or deleted).
	ErrInvalidState = errors.New("whycache: shared state not valid")

	// ErrCorrupt is returned when a log record, state file or snapshot fails
	// validation. It also matches logstore.ErrCorrupt and shm.ErrCorrupt
	// causes.
	ErrCorrupt = errors.New("whycache: corrupt data")

	// ErrLogMismatch is returned when the log has another identity than the
	// one the state (or a snapshot) was built from: a typo in the store's
	// address, a new table or directory, a log that was reset. Update
	// refuses to replace a filled state with another log's content unless
	// Options.Rebuild is RebuildAnyLog; Set refuses before it commits;
	// LoadSnapshot refuses a snapshot of another log. It also matches
	// logstore.ErrLogMismatch.
	ErrLogMismatch = errors.New("whycache: the log is not the one the state was built from")

	// ErrLogDiverged is the cause Update gives when the log no longer holds
	// the history the state applied: it went backwards (restored from a
	// backup, a failover to a replica that lags) and records the state
	// holds are gone, perhaps with their ids reused by new records. Update
	// rebuilds the state from the log as it now is, unless Options.Rebuild
	// is RebuildNever.
	ErrLogDiverged = errors.New("whycache: the log went backwards: it no longer holds records the state applied")

	// ErrHistoryCompacted is the cause Update gives when the log was
	// compacted past the state (the state's position is below the log's
	// compaction horizon, so delete markers or filtered keys it needs are
	// gone). Update rebuilds the state unless Options.Rebuild is
	// RebuildNever.
	ErrHistoryCompacted = errors.New("whycache: the log was compacted past the state")

	// ErrRebuildNeeded is returned by Update when the state can only be
	// made to match the log by rebuilding it from the whole log and the
	// options do not allow that; the error also wraps the cause
	// (ErrLogDiverged, ErrHistoryCompacted or ErrLogMismatch). The state is
	// left as it was.
	ErrRebuildNeeded = errors.New("whycache: the state must be rebuilt from the log")

	// ErrWriterStuck is returned by a read that waited Options.ReadTimeout
	// for a writer's batch that does not end (the writer was stopped, or
	// hangs): the message names the writer's pid and what the system says
	// of it. Nothing was changed; the read can be retried. It also matches
	// shm.ErrWriterStuck.
	ErrWriterStuck = errors.New("whycache: the state's writer makes no progress")

	// ErrWouldWait is returned by TryAppendGet when the read cannot be
	// done without waiting: a writer is inside a batch of the state, or
	// the state needs the slow path (never filled yet, replaced by a
	// rebuild or a snapshot). Nothing was read; AppendGet would wait and
	// answer.
	ErrWouldWait = errors.New("whycache: the read would wait for a writer")

	// ErrReadOnly is returned by every write (Set, Update, LoadSnapshot,
	// ...) of an instance whose state file is open read-only
	// (Options.ReadOnly, or a process with read permission only). It also
	// matches shm.ErrReadOnly.
	ErrReadOnly = errors.New("whycache: the state file is open read-only")

	// ErrUnsafe is returned when the state directory or a file in it could
	// be controlled by another user (owned by an untrusted user, writable
	// by one, a symbolic link): the message says what is wrong and the
	// command that fixes it. It also matches statedir.ErrUnsafe.
	ErrUnsafe = errors.New("whycache: unsafe state directory or file")

	// ErrSnapshotBehind is returned by LoadSnapshot for a snapshot older
	// than the live state when the loaded state cannot be caught up with
	// the log before the swap (the store is unreachable, or the log was
	// compacted past the snapshot): loading it would move keys back.
	// SnapshotLoadOptions.Force loads it anyway.
	ErrSnapshotBehind = errors.New("whycache: the snapshot is older than the live state")

	// ErrCommitUnknown is returned (wrapped) by MySQLStore.Commit, and so
	// by Set and its siblings on a MySQLStore, when the connection failed
	// while the server was committing: the records may or may not be in
	// the log. The message names the ids they hold and the nonce they
	// carry if the commit took effect; a later Poll with After at the last
	// of those ids and that nonce shows the truth (VerdictMatch if it did,
	// even after newer single-key records replaced them). It is the very
	// value the MySQL store wraps (its message starts "mysqlstore: "), not
	// a copy, so errors.Is matches the store's errors.
	ErrCommitUnknown = mysqlstore.ErrCommitUnknown

	// ErrReplicaMismatch is returned (wrapped, together with
	// ErrLogMismatch) by a poll of a MySQLStore whose read pool
	// (MySQLStoreOptions.ReadDB) holds another log than its primary: a
	// replica of another server or database, or one that has not yet
	// received a log recreated on the primary. Nothing is applied from
	// it. It is the very value the MySQL store wraps.
	ErrReplicaMismatch = mysqlstore.ErrReplicaMismatch

	// ErrNotRepresentable is returned (wrapped) by writes the log's format
	// cannot express, before anything is committed: in Python mode
	// (FormatPython), a set of an empty value (Python reads an empty value
	// as a delete) and a history rewrite that drops keys on purpose. It is
	// logstore.ErrNotRepresentable itself.
	ErrNotRepresentable = logstore.ErrNotRepresentable
)

// lowerSentinels maps the sentinels of the layers below (the log, the
// state file, the state directory) to this package's, so that callers
// need only this package's (wrapStateErr).
var lowerSentinels = []struct{ from, to error }{
	{logstore.ErrCorrupt, ErrCorrupt},
	{logstore.ErrLogMismatch, ErrLogMismatch},
	{logstore.ErrTooLarge, ErrTooLarge},
	{shm.ErrWriterStuck, ErrWriterStuck},
	{shm.ErrReadOnly, ErrReadOnly},
	{statedir.ErrUnsafe, ErrUnsafe},
	{prefixtree.ErrCorrupt, ErrCorrupt},
	{prefixtree.ErrTooLarge, ErrTooLarge},
	{prefixtree.ErrEmptyKey, ErrEmptyKey},
}

// wrapStateErr makes an error of the layers below match this package's
// sentinel for its condition too: "whycache: corrupt data: <the error>".
// Other errors are returned as they are.
func wrapStateErr(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range lowerSentinels {
		if errors.Is(err, s.from) && !errors.Is(err, s.to) {
			return fmt.Errorf("%w: %w", s.to, bare(err))
		}
	}
	return err
}

// Error messages. Each package prefixes the messages it makes with its
// name, once: this package's start with "whycache: " (its sentinels do),
// the stores' with "filestore: " or "mysqlstore: ", the state's with
// "shm: " or "prefixtree: ". An error passing through this package gets
// context (what was being done), never a second prefix:
//
//   - a cause that says where it comes from keeps its prefix: "commit:
//     filestore: ...: logstore: store closed";
//   - a cause of this package's keeps its prefix first and the context
//     follows it: "whycache: read log: corrupt data: filestore: ...";
//   - a cause that says nothing of where it comes from (an errno, a
//     context's error) gets this package's prefix with the context:
//     fmt.Errorf("whycache: take swap lock %s: %w", ...).
//
// withContext and bare keep the first two rules; the command-line tool
// prints "whycache: " before a message that lacks it.

// errPrefix starts the messages of this package's errors.
const errPrefix = "whycache: "

// withContext returns err with what in front of its message ("what:
// cause", or "whycache: what: rest" for a cause of this package's, so
// that the prefix stays first and single). errors.Is and errors.As see
// the cause. nil stays nil.
func withContext(what string, err error) error {
	if err == nil {
		return nil
	}
	return &contextError{what: what, err: err}
}

// contextError is an error with context; see withContext.
type contextError struct {
	what string
	err  error
}

func (e *contextError) Error() string {
	msg := e.err.Error()
	if rest, ok := strings.CutPrefix(msg, errPrefix); ok {
		return errPrefix + e.what + ": " + rest
	}
	return e.what + ": " + msg
}

func (e *contextError) Unwrap() error { return e.err }

// bare returns err without this package's prefix in its message, for a
// cause placed inside a message that starts with it (after a sentinel:
// fmt.Errorf("%w: ...: %w", ErrSnapshotBehind, bare(err))). errors.Is and
// errors.As see err.
func bare(err error) error {
	if !strings.HasPrefix(err.Error(), errPrefix) {
		return err
	}
	return bareError{err}
}

// bareError is an error whose message drops this package's prefix; see
// bare.
type bareError struct{ err error }

func (e bareError) Error() string { return strings.TrimPrefix(e.err.Error(), errPrefix) }
func (e bareError) Unwrap() error { return e.err }
