// Package logstore defines the change log that whycache instances commit
// writes to and replay from: the Store interface that log backends
// implement, the encoding of update records, and (in package storetest) a
// conformance suite that every Store passes.
//
// # The log model
//
// A log is a sequence of records, each with a unique, positive uint64 id.
// Records are committed in batches; within a log, commit order equals id
// order: once a reader has seen a record with id N, every record with an id
// below N that will ever exist is already visible to it. Ids are never
// reused within one log identity, so a reader that remembers the last id it
// applied can resume with ReadUpdates(last+1, ...) and miss nothing. A
// store that cannot keep this (a table another program writes with
// AUTO_INCREMENT ids) says so through Traits, and its Poll keeps the
// promise instead: it never delivers past an id that may still commit.
//
// Records may disappear from the log, but only in ways that keep every
// reader convergent:
//
//   - A store may drop a single-key record when a newer single-key record for
//     the same key is committed (Record.SingleKey): replaying the newer one
//     gives the same result.
//   - Compact may drop or shrink records whose effect is superseded by later
//     records. When it also removes effects that are not superseded (delete
//     markers, filtered keys), it first raises the compaction horizon: a
//     reader whose position is below the horizon must rebuild its state from
//     the start of the log instead of tailing it.
//   - Reset deletes every record and gives the log a new identity.
//
// # Positions and nonces
//
// Every commit carries a random, non-zero 64-bit nonce, stored with each of
// its records. A Position names a point in a log's history: a record id and
// the nonce of the commit that wrote that id. A reader remembers the
// position it applied; Poll checks it against the log before delivering
// anything newer (Verdict). Because a log's history is only ever extended,
// the same nonce at the same id proves that the log holds the same history
// up to that id; another nonce, or an id above the log's latest, proves
// that the log went backwards (restored from a backup, a failover to a
// lagging replica) and that records the reader applied are gone, even when
// new commits have since reused their ids.
//
// Records can disappear (a single-key replacement, Compact), but their
// commit stays verifiable: a store keeps a mark (id and nonce) of every
// commit whose records are all gone, at least for commits that end at or
// above the compaction horizon. Positions below the horizon need no check:
// a reader there rebuilds anyway.
//
// What a nonce cannot detect: a log restored from a backup that is not a
// consistent prefix of the history (torn copies of a live log), and records
// committed with nonce 0 (a store that keeps no nonces, or records written
// before nonces existed), whose positions are checked by id only.
package logstore

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Sentinel errors. Every error a Store or decoder returns for these
// conditions wraps one of them (test with errors.Is).
var (
	// ErrCorrupt is returned when stored or transmitted bytes fail
	// validation: a bad checksum, a truncated or malformed record, an
	// unknown format version, damaged log metadata.
	ErrCorrupt = errors.New("logstore: corrupt data")

	// ErrClosed is returned by every method of a Store after Close.
	ErrClosed = errors.New("logstore: store closed")

	// ErrTooLarge is returned by Commit when a record is larger than the
	// store can hold (Limits.MaxRecordSize).
	ErrTooLarge = errors.New("logstore: record too large")

	// ErrLogMismatch is returned by Commit when the caller expects a log
	// identity other than the log's; nothing is committed.
	ErrLogMismatch = errors.New("logstore: log identity differs from the expected one")

	// ErrNoLog is returned by the read methods of a store whose log was
	// never created (for MySQL: no meta row; run CreateTable, "whycache
	// init-schema", on the primary). Read paths never create a log.
	ErrNoLog = errors.New("logstore: log not initialized")
)

// LogID identifies one log. It is chosen at random when the log is created
// and changes on Reset, so a state built from one log is never mixed with
// records of another. The zero LogID is never used by a live log.
type LogID [16]byte

// Record is one record to commit.
type Record struct {
	// Contents is the encoded record (see AppendRecord). Stores treat it as
	// opaque bytes and never retain the slice after Commit returns.
	Contents []byte

	// SingleKey is the record's only key when it holds exactly one item, or
	// nil. A store may use it to drop older single-key records for the same
	// key (the log then stays near one record per key without compaction).
	SingleKey []byte
}

// Position is a point in a log's history: a record id and the nonce of the
// commit that wrote it (see the package documentation).
type Position struct {
	ID uint64
	// Nonce is the nonce of the commit that wrote record ID; every record
	// of a commit has the same one. 0 means unknown: the position is then
	// checked by id only.
	Nonce uint64
}

// Committed describes a successful Commit.
type Committed struct {
	// First and Last are the ids of the first and last record committed;
	// the records got consecutive ids.
	First, Last uint64
	// Nonce is the commit's nonce, non-zero for stores that keep nonces.
	Nonce uint64
	// Prev is the position of the log's last record before First as the
	// commit found it (the zero Position for an empty log): the log holds
	// its history up to Prev.ID, then these records. A writer whose state
	// is at exactly Prev (same id, same nonce) may apply the records
	// without reading the log; any other writer must read it. Its Nonce is
	// 0 when the store does not know it.
	Prev Position
}

// Position returns the position of the commit's last record.
func (c Committed) Position() Position { return Position{ID: c.Last, Nonce: c.Nonce} }

// Info describes a log.
type Info struct {
	// ID is the log identity; it changes when the log is Reset.
	ID LogID

	// Horizon is the compaction horizon: records with ids <= Horizon may have
	// lost effects that later records do not supersede (removed delete
	// markers, filtered keys), and commits ending below it may have lost
	// their marks. A reader whose position is below Horizon must rebuild
	// from the start of the log.
	Horizon uint64
}

// Limits describes the sizes a store accepts.
type Limits struct {
	// MaxRecordSize is the largest Record.Contents the store can hold.
	MaxRecordSize int
	// MaxSingleKeySize is the largest Record.SingleKey the store indexes;
	// longer keys are committed with SingleKey treated as nil.
	MaxSingleKeySize int
}

// Entry is one record delivered by Poll.
type Entry struct {
	ID    uint64
	Nonce uint64 // the nonce of the commit that wrote it (0 if unknown)
	// Contents is the encoded record, valid only during the callback.
	Contents []byte
}

// Position returns the entry's position.
func (e Entry) Position() Position { return Position{ID: e.ID, Nonce: e.Nonce} }

// PollRequest asks Poll for the records after a position.
type PollRequest struct {
	// After is the position the reader has applied. Poll delivers the
	// records with ids above After.ID and checks After against the log
	// (PollResult.Verdict); the zero Position asks for the whole log.
	After Position

	// Max bounds the number of records one call delivers; 0 means the
	// store's page size. The store may deliver fewer (PollResult.More).
	Max int

	// Primary makes a store with a separate read pool (a replica) read
	// from the primary: a writer that must see its own commit sets it.
	// Stores with one pool ignore it.
	Primary bool
}

// Verdict is what Poll found at the position it was asked to check.
type Verdict int

const (
	// VerdictNone: After.ID was 0, there was nothing to check.
	VerdictNone Verdict = iota
	// VerdictMatch: the commit that wrote After.ID carries After.Nonce (or
	// After.Nonce is 0 and After.ID <= Latest.ID): the log holds the
	// history the reader applied.
	VerdictMatch
	// VerdictMismatch: the commit at After.ID carries another nonce: the
	// log's history differs from the one the reader applied.
	VerdictMismatch
	// VerdictAhead: After.ID is above the log's latest id: the log went
	// backwards, or the pool read lags behind the primary (a replica).
	VerdictAhead
	// VerdictUnknown: the log keeps no trace of the commit at After.ID (no
	// record and no mark); only possible below the horizon.
	VerdictUnknown
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case VerdictNone:
		return "none"
	case VerdictMatch:
		return "match"
	case VerdictMismatch:
		return "mismatch"
	case VerdictAhead:
		return "ahead"
	case VerdictUnknown:
		return "unknown"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// PollResult is what one Poll call saw, all in one consistent snapshot of
// the log.
type PollResult struct {
	// Info is the log's identity and horizon.
	Info Info
	// Latest is the position of the log's latest record (its nonce is that
	// of the latest commit), or the zero Position for a log that never had
	// a commit.
	Latest Position
	// LatestTime is when the latest commit was made, by the clock of the
	// store that made it (the primary's, for a replicated log); zero when
	// the store does not know.
	LatestTime time.Time
	// Heartbeat is the time of the last heartbeat written to the log's
	// primary (Heartbeater), as the snapshot holds it; zero when nobody
	// writes heartbeats. On a replica, ReadTime - Heartbeat is how far it
	// lags (plus up to one heartbeat period), whether or not anything was
	// committed meanwhile.
	Heartbeat time.Time
	// ReadTime is the clock of the server the snapshot was read from, at
	// the read (a store may estimate it from the local clock and a
	// measured offset); zero when the store does not know.
	ReadTime time.Time
	// HeldBack is, for a store whose ids commit out of order
	// (Traits.OutOfOrderIDs) and whose Latest is therefore the end of what
	// it delivers, the highest id it saw above Latest: records after a
	// hole it holds back until the hole fills or its wait ends, or beyond
	// the page (Max); 0 otherwise. Readers never apply past Latest; they
	// report the records up to HeldBack as lag.
	HeldBack uint64
	// Verdict is the check of PollRequest.After.
	Verdict Verdict
	// Detail, when not empty, says why the verdict is what it is, in
	// words for a log line (for example which record a store found
	// committed in a hole its reader had passed); stores that cannot say
	// more than the verdict leave it empty.
	Detail string
	// More is set when the call stopped after Max records, before Latest:
	// call again with After = Next.
	More bool
	// Next is the position of the last record delivered, or After when none
	// was.
	Next Position
}

// CompactFunc decides the fate of one record during Compact. It returns the
// record's new contents (the same slice to keep it unchanged, a new encoding
// to shrink it), or keep=false to drop it. The contents slice is only valid
// during the call.
type CompactFunc func(id uint64, contents []byte) (newContents []byte, keep bool, err error)

// CompactStats summarizes a Compact call.
type CompactStats struct {
	RecordsBefore, RecordsAfter uint64
	BytesBefore, BytesAfter     uint64
}

// Store is a change log backend. Implementations are safe for concurrent use
// by many goroutines and, unless documented otherwise, by many processes and
// machines at once.
type Store interface {
	// LatestUpdateID is the highest id committed so far (0 for an empty log).
	LatestUpdateID(ctx context.Context) (uint64, error)

	// ReadUpdates calls fn for every stored record with low <= id <= high,
	// in ascending id order. The contents slice is only valid during the
	// call. An error from fn stops the read and is returned as is.
	ReadUpdates(ctx context.Context, low, high uint64, fn func(id uint64, contents []byte) error) error

	// Poll is the reader's one call per poll. In one consistent snapshot of
	// the log it reads the identity, the horizon and the latest position,
	// checks req.After (PollResult.Verdict), and calls fn, in ascending id
	// order, for the records with req.After.ID < id <= Latest.ID, at most
	// req.Max of them (then More is set). Only records of complete commits
	// are delivered. A reader that applies every delivered record and, once
	// a call returns More == false, takes Latest as its position, holds every
	// record up to Latest.ID at its latest version: a single-key record
	// replaced before the snapshot has its replacement at or below
	// Latest.ID. Poll determines Info, Latest, LatestTime and Verdict before
	// it calls fn the first time, so a caller can refuse what it was given
	// before applying any of it. An error from fn stops the call and is
	// returned as is, together with that result and Next = the position of
	// the last entry fn accepted. Entry.Contents is only valid during the
	// call. Poll never writes.
	Poll(ctx context.Context, req PollRequest, fn func(Entry) error) (PollResult, error)

	// Commit appends records to the log, atomically and in order, with a
	// new random nonce, and returns their ids and the nonce; the records
	// get consecutive ids. Ids are assigned so that commit order equals id
	// order; Committed.Prev says what the commit directly follows. If expect is not the zero LogID and the log has another
	// identity, Commit fails with ErrLogMismatch and commits nothing. On
	// error nothing was committed (or, if the outcome is unknown, the error
	// says so and a later ReadUpdates shows the truth). Concurrent calls
	// may share one transaction (group commit); each gets its own nonce or
	// the shared one. Commit with no records commits nothing and returns
	// First = Last = the latest id.
	Commit(ctx context.Context, expect LogID, records []Record) (Committed, error)

	// Info returns the log identity and compaction horizon. It never
	// creates anything; a log that does not exist yet is ErrNoLog.
	Info(ctx context.Context) (Info, error)

	// Compact passes every record with id <= limit to fn, in ascending id
	// order, and replaces or drops it as fn says; ids of kept records never
	// change. If horizon is above the current horizon, the horizon is raised
	// to it before any record is changed. Each record's replacement is
	// atomic for readers; the pass as a whole is not. Records committed
	// concurrently (ids above limit) are unaffected. The commit of a dropped
	// record stays verifiable by Poll (a mark) unless it ends below the
	// horizon.
	Compact(ctx context.Context, limit, horizon uint64, fn CompactFunc) (CompactStats, error)

	// Reset deletes every record and gives the log a new identity. Ids keep
	// increasing across a reset, so they are never reused.
	Reset(ctx context.Context) error

	// Limits returns the sizes the store accepts.
	Limits() Limits

	// Close releases the store's resources. It does not close resources the
	// caller passed in (such as a *sql.DB).
	Close() error
}

// Heartbeater is implemented by stores that keep the time of the last
// heartbeat in the log, so that readers of a replica can tell how far it
// lags even when nothing is committed (PollResult.Heartbeat). One process
// (a follow daemon's leader on one machine) calls Heartbeat periodically;
// it writes to the primary.
type Heartbeater interface {
	Heartbeat(ctx context.Context) error
}

// Checker is implemented by stores that can verify their whole log (every
// record's framing and checksums, the metadata). Damage is reported with
// an error wrapping ErrCorrupt that says where it is.
type Checker interface {
	Check(ctx context.Context) error
}

// Traits are a store's departures from the log model above that readers
// and writers must allow for. The zero Traits is a store that keeps the
// model whole.
type Traits struct {
	// OutOfOrderIDs: ids are taken before their commit, so they commit in
	// another order (Python whycache's AUTO_INCREMENT). Poll then stops
	// below the latest id at a hole that may still fill, for up to
	// HoleWait; records of one commit need not have consecutive ids with
	// the other writers' (Committed.Prev still says when a writer may
	// apply its own commit from memory); nonces are 0 and positions are
	// checked by id only.
	OutOfOrderIDs bool

	// HoleWait bounds how long Poll waits for a hole to fill before it
	// passes it (with OutOfOrderIDs).
	HoleWait time.Duration

	// NoHorizon: the log has no place for a compaction horizon. Compact
	// refuses to raise it, so a history rewrite must keep every delete
	// marker nothing supersedes and cannot drop keys on purpose.
	NoHorizon bool
}

// TraitStore is implemented by stores whose Traits are not the zero
// Traits.
type TraitStore interface {
	Traits() Traits
}

// TraitsOf returns the traits of s: those it reports (TraitStore), else
// the zero Traits.
func TraitsOf(s Store) Traits {
	if ts, ok := s.(TraitStore); ok {
		return ts.Traits()
	}
	return Traits{}
}
