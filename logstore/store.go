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
// applied can resume with ReadUpdates(last+1, ...) and miss nothing.
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
package logstore

import (
	"context"
	"errors"
)

// Sentinel errors. Every error a Store or decoder returns for these
// conditions wraps one of them (test with errors.Is).
var (
	// ErrCorrupt is returned when stored or transmitted bytes fail
	// validation: a bad checksum, a truncated or malformed record, an
	// unknown format version.
	ErrCorrupt = errors.New("logstore: corrupt data")

	// ErrClosed is returned by every method of a Store after Close.
	ErrClosed = errors.New("logstore: store closed")

	// ErrTooLarge is returned by Commit when a record is larger than the
	// store can hold (Limits.MaxRecordSize).
	ErrTooLarge = errors.New("logstore: record too large")
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

// Info describes a log.
type Info struct {
	// ID is the log identity; it changes when the log is Reset.
	ID LogID

	// Horizon is the compaction horizon: records with ids <= Horizon may have
	// lost effects that later records do not supersede (removed delete
	// markers, filtered keys). A reader whose applied id is below Horizon
	// must rebuild from the start of the log.
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

	// Commit appends records to the log, atomically and in order, and
	// returns the id of the last one; the records get consecutive ids
	// ending there. Ids are assigned so that commit order equals id order.
	// On error nothing was committed (or, if the outcome is unknown, the
	// error says so and a later ReadUpdates shows the truth). Concurrent
	// calls may share one transaction (group commit).
	Commit(ctx context.Context, records []Record) (lastID uint64, err error)

	// Info returns the log identity and compaction horizon. A store creates
	// the identity the first time it is needed.
	Info(ctx context.Context) (Info, error)

	// Compact passes every record with id <= limit to fn, in ascending id
	// order, and replaces or drops it as fn says; ids of kept records never
	// change. If horizon is above the current horizon, the horizon is raised
	// to it before any record is changed. Each record's replacement is
	// atomic for readers; the pass as a whole is not. Records committed
	// concurrently (ids above limit) are unaffected.
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
