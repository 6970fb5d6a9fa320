package whycache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// Apply batching: records are applied to the state in batches that readers
// see atomically; these bound how long readers wait for one batch.
const (
	applyBatchItems = 4096
	applyBatchBytes = 8 << 20
	// applyMaxBytes bounds what a batch holds even inside one commit: a
	// commit larger than this (a giant SetMulti) is applied in several
	// batches, which readers may see between.
	applyMaxBytes = 256 << 20
)

// errStateMoved is returned by a flush that finds the state's log identity
// changed under it (another process rebuilt or reset it): the caller starts
// over from the state as it now is.
var errStateMoved = errors.New("whycache: the state changed log under the update")

// pendingRecord is a log record read but not yet applied.
type pendingRecord struct {
	pos   logstore.Position
	items []logstore.Item
	size  int // bytes of the encoded record
}

// applier applies log records to a state in id order, in batches that
// readers see whole. It is the one path by which records reach a state:
// Update's records from the log, a rebuild's, a snapshot's catch-up, and
// this machine's own commit (applyCommitted). No batch is open while the
// store is read, so readers never wait on I/O.
//
// Records at or below the state's position are skipped (another process
// applied them); per-key record ids keep a newer value from being
// overwritten by an older record. A flush advances the state's position to
// the last record it applied; only a claim (flush with claim set) advances
// the update id.
type applier struct {
	ctx     context.Context // bounds the waits for the state's writer lock
	t       *prefixtree.Tree
	logID   logstore.LogID
	pending []pendingRecord
	items   int
	bytes   int
	applied int
	onBatch func(pos logstore.Position) // progress callback, may be nil
	noPurge bool                        // keep tombstones (their ids are needed)
	// check, if set, is called in the batch with the meta words as found;
	// an error rolls the batch back and is returned by flush.
	check func(m stateMeta) error
}

// add decodes a record (copying it) and queues it. It reports whether the
// queue is full enough to flush.
func (a *applier) add(e logstore.Entry) (full bool, err error) {
	buf := append([]byte(nil), e.Contents...)
	rec := pendingRecord{pos: e.Position(), size: len(buf)}
	if err := logstore.DecodeRecord(buf, func(it logstore.Item) error {
		rec.items = append(rec.items, it)
		return nil
	}); err != nil {
		return false, fmt.Errorf("%w: record %d: %w", ErrCorrupt, e.ID, err)
	}
	a.pending = append(a.pending, rec)
	a.items += len(rec.items)
	a.bytes += len(buf)
	return a.items >= applyBatchItems || a.bytes >= applyBatchBytes, nil
}

// full reports whether the pending records fill a batch.
func (a *applier) full() bool {
	return a.items >= applyBatchItems || a.bytes >= applyBatchBytes
}

// overfull reports whether the pending records must be applied even in
// the middle of a commit (applyMaxBytes).
func (a *applier) overfull() bool { return a.bytes >= applyMaxBytes }

// startsCommit reports whether e begins another commit than the last
// pending record's: all records of a commit carry its nonce (a record
// without one counts as a commit of its own).
func (a *applier) startsCommit(e logstore.Entry) bool {
	n := len(a.pending)
	return n == 0 || e.Nonce == 0 || a.pending[n-1].pos.Nonce != e.Nonce
}

// flushComplete applies the pending records of complete commits, keeping
// the trailing records of a commit that may go on in the next poll (all
// of them when they exceed applyMaxBytes), so that readers see a commit of
// several records whole.
func (a *applier) flushComplete() error {
	n := len(a.pending)
	if n == 0 {
		return nil
	}
	cut := n
	if last := a.pending[n-1].pos.Nonce; last != 0 && !a.overfull() {
		for cut > 0 && a.pending[cut-1].pos.Nonce == last {
			cut--
		}
	}
	if cut == 0 {
		return nil
	}
	keep := append([]pendingRecord(nil), a.pending[cut:]...)
	a.pending = a.pending[:cut]
	if err := a.flush(nil, false); err != nil {
		return err
	}
	for _, r := range keep {
		a.pending = append(a.pending, r)
		a.items += len(r.items)
		a.bytes += r.size
	}
	return nil
}

// read applies the records ReadUpdates(low, high) delivers, flushing
// whenever a batch is full (the records are not flushed at the end).
func (a *applier) read(ctx context.Context, store logstore.Store, low, high uint64) error {
	return store.ReadUpdates(ctx, low, high, func(id uint64, contents []byte) error {
		full, err := a.add(logstore.Entry{ID: id, Contents: contents})
		if err != nil || !full {
			return err
		}
		return a.flush(nil, false)
	})
}

// warmItems brings the keys of records into the CPU cache before a batch
// writes them, so that readers wait less for the batch (Tree.Warm). It is
// only a hint: an error (a stuck writer) is left to the batch to meet.
func warmItems(t *prefixtree.Tree, recs []pendingRecord) {
	keys := make([][]byte, 0, 64)
	for _, r := range recs {
		for _, it := range r.items {
			keys = append(keys, it.Key)
		}
	}
	_ = t.Warm(keys...)
}

// flush applies the pending records in one batch and moves the state's
// position to the last of them. With claim set, the state then claims
// claim.ID (its update id; the position moves there too if it is behind),
// and done marks the state filled. It returns errStateMoved when the state
// now follows another log.
func (a *applier) flush(claim *logstore.Position, done bool) error {
	t := a.t
	if len(a.pending) == 0 && claim != nil && a.check == nil && !t.File().ReadOnly() {
		// An idle poll: when the state already holds the claim, a batch
		// would change nothing. Skip it, and its locks and wake-ups; a
		// state retired or changed meanwhile takes the batch path, and so
		// does a read-only one (whose Update fails with ErrReadOnly).
		if m, err := readState(t); err == nil && m.holds(a.logID, *claim, done) {
			if a.onBatch != nil {
				a.onBatch(m.pos)
			}
			return nil
		}
	}
	if len(a.pending) > 0 {
		warmItems(t, a.pending)
	}
	b, err := t.BeginContext(a.ctx)
	if err != nil {
		return err
	}
	old := stateMetaLocked(t)
	m := old
	switch {
	case m.logID == a.logID:
	case !hasData(t, m):
		m.logID = a.logID
	default:
		b.Rollback()
		return errStateMoved
	}
	if a.check != nil {
		if err := a.check(old); err != nil {
			b.Rollback()
			return err
		}
	}
	for _, rec := range a.pending {
		if rec.pos.ID <= m.pos.ID {
			continue // another process applied it since we read it
		}
		if err = b.Reserve(len(rec.items)); err == nil {
			err = applyItems(b, rec.pos.ID, rec.items)
		}
		if err != nil {
			b.Rollback()
			return err
		}
		m.pos = rec.pos
	}
	if len(a.pending) > 0 {
		m.appliedAt = uint64(time.Now().UnixNano())
	}
	if claim != nil {
		if claim.ID >= m.pos.ID {
			m.pos = *claim
		}
		m.updateID = max(m.updateID, claim.ID)
		m.filled = m.filled || done
	}
	if err := m.writeTo(b, old); err != nil {
		b.Rollback()
		return err
	}
	if !a.noPurge && t.Tombstones() > 1024 && t.Tombstones() > t.Len()/8 {
		if _, err := b.PurgeTombstones(m.pos.ID); err != nil {
			b.Rollback()
			return err
		}
	}
	if err := b.Commit(); err != nil {
		return err
	}
	a.applied += len(a.pending)
	clear(a.pending)
	a.pending, a.items, a.bytes = a.pending[:0], 0, 0
	if a.onBatch != nil {
		a.onBatch(m.pos)
	}
	return nil
}

// applyItems applies the items of record id to a batch.
func applyItems(b *prefixtree.Batch, id uint64, items []logstore.Item) error {
	for _, it := range items {
		var err error
		if it.Delete {
			_, err = b.Delete(it.Key, id)
		} else {
			_, err = b.PutExpiring(it.Key, it.Value, id, it.Expires)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
