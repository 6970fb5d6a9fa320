package whycache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// Item is one key/value pair of SetMulti, with its expiry.
type Item struct {
	Key, Value []byte
	// ExpiresAt is the wall-clock time from which the item is invisible
	// (see SetWithTTL); the zero time means it never expires. A non-zero
	// time must be after the Unix epoch (ErrBadTTL).
	ExpiresAt time.Time
}

// Set commits key=value to the log, then applies it to the local state so
// every process on this machine sees it at once. It returns the id of the
// record written. Errors: ErrEmptyKey, ErrTooLarge (the item does not fit in
// one record of MaxUpdateSize bytes), or the store's error, in which case
// nothing was changed locally. If the record was committed but could not be
// applied locally (for example the state file's disk is full), Set returns
// the id and an error; the next Update applies it.
func (c *Instance) Set(ctx context.Context, key, value []byte) (uint64, error) {
	return c.commitItems(ctx, []logstore.Item{{Key: key, Value: value}})
}

// SetMulti commits all items and applies them locally, like Set. Items are
// packed into as few records of at most MaxUpdateSize bytes as possible,
// committed together (atomically for stores that commit a batch in one
// transaction) and applied locally in one batch that readers see all at
// once. If any item is invalid or too large, nothing is written. It returns
// the id of the last record written, or the current latest id for no items.
func (c *Instance) SetMulti(ctx context.Context, items []Item) (uint64, error) {
	li := make([]logstore.Item, len(items))
	for i, it := range items {
		exp, err := expiresNano(it.ExpiresAt)
		if err != nil {
			return 0, err
		}
		li[i] = logstore.Item{Key: it.Key, Value: it.Value, Expires: exp}
	}
	return c.commitItems(ctx, li)
}

// Delete commits a delete of key and applies it locally. Deleting a missing
// key is not an error.
func (c *Instance) Delete(ctx context.Context, key []byte) (uint64, error) {
	return c.commitItems(ctx, []logstore.Item{{Key: key, Delete: true}})
}

// DeleteMulti commits deletes of all keys and applies them locally, like
// SetMulti.
func (c *Instance) DeleteMulti(ctx context.Context, keys [][]byte) (uint64, error) {
	li := make([]logstore.Item, len(keys))
	for i, k := range keys {
		li[i] = logstore.Item{Key: k, Delete: true}
	}
	return c.commitItems(ctx, li)
}

// validateItem checks one item against the key rules and the record size.
func (c *Instance) validateItem(it logstore.Item) error {
	if len(it.Key) == 0 {
		return ErrEmptyKey
	}
	if len(it.Key) > prefixtree.MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes (the limit is %d)", ErrTooLarge, len(it.Key), prefixtree.MaxKeySize)
	}
	if size := logstore.RecordOverhead + it.EncodedSize(); size > c.maxRecord {
		return fmt.Errorf("%w: item of key %.40q needs a %d-byte record; MaxUpdateSize is %d", ErrTooLarge, it.Key, size, c.maxRecord)
	}
	return nil
}

// packRecords validates items and encodes them into records of at most
// maxRecord bytes, in order.
func (c *Instance) packRecords(items []logstore.Item) ([]logstore.Record, [][]logstore.Item, error) {
	for _, it := range items {
		if err := c.validateItem(it); err != nil {
			return nil, nil, err
		}
	}
	var recs []logstore.Record
	var groups [][]logstore.Item
	for start := 0; start < len(items); {
		size := logstore.RecordOverhead
		end := start
		for end < len(items) {
			s := items[end].EncodedSize()
			if end > start && size+s > c.maxRecord {
				break
			}
			size += s
			end++
		}
		group := items[start:end]
		contents, err := logstore.AppendRecord(make([]byte, 0, size), group)
		if err != nil {
			return nil, nil, withContext("encode record", err)
		}
		rec := logstore.Record{Contents: contents}
		if len(group) == 1 {
			rec.SingleKey = group[0].Key
		}
		recs = append(recs, rec)
		groups = append(groups, group)
		start = end
	}
	return recs, groups, nil
}

func (c *Instance) commitItems(ctx context.Context, items []logstore.Item) (uint64, error) {
	recs, groups, err := c.packRecords(items)
	if err != nil {
		return 0, err
	}
	// A write must show on this machine at once: a state this process may
	// only read cannot take it, so nothing is committed.
	if t, err := c.tree(); err != nil {
		return 0, err
	} else if t.File().ReadOnly() {
		return 0, fmt.Errorf("%w: nothing was committed: %s is open read-only", ErrReadOnly, c.path)
	}
	if err := c.restoreRemovedState(ctx); err != nil {
		return 0, err
	}
	expect, err := c.expectedLog()
	if err != nil {
		return 0, err
	}
	res, err := c.store.Commit(ctx, expect, recs)
	if err != nil {
		if errors.Is(err, logstore.ErrLogMismatch) {
			return 0, fmt.Errorf("%w: nothing was committed: the state %s was built from log %x, the store holds another log (check the store's address; 'whycache update --rebuild' adopts the new log)",
				ErrLogMismatch, c.path, expect[:])
		}
		return 0, withContext("commit", wrapStateErr(err))
	}
	if len(recs) == 0 {
		return res.Last, nil
	}
	c.publish(ctx, res.Last)
	if err := c.applyCommitted(ctx, res, groups); err != nil {
		return res.Last, withContext(fmt.Sprintf("committed as record %d but not applied locally (the next Update will)", res.Last), err)
	}
	return res.Last, nil
}

// expectedLog returns the identity of the log the state was filled from,
// which a commit must go to, or the zero LogID for a state never filled
// (its commits go to whatever log the store holds, and are not applied
// locally).
func (c *Instance) expectedLog() (logstore.LogID, error) {
	var id logstore.LogID
	err := c.withTree(func(t *prefixtree.Tree) error {
		m, err := readState(t)
		if err == nil && m.filled {
			id = m.logID
		}
		return err
	})
	return id, err
}

// errNotNext says that a commit does not directly follow the state's
// position: the records between must come from the log first.
var errNotNext = errors.New("whycache: commit does not follow the state's position")

// applyCommitted makes this machine's state hold a commit it just made.
// When the commit directly follows the state's position — the store found
// the log's last record to be exactly the state's position, same id and
// same nonce (Committed.Prev), and no catch-up is under way — its records
// are applied from memory and the state claims the commit's last id:
// nothing between can be missing, and the log still holds the history the
// state applied. Otherwise the state catches up from the log (reading the
// primary of a replicated store), which checks the state's position first
// (rebuilding when the log went backwards) and brings the commit along. A
// state never filled is left alone.
func (c *Instance) applyCommitted(ctx context.Context, res logstore.Committed, groups [][]logstore.Item) error {
	pending := make([]pendingRecord, len(groups))
	for i, g := range groups {
		pending[i] = pendingRecord{pos: logstore.Position{ID: res.First + uint64(i), Nonce: res.Nonce}, items: g}
	}
	skip := false
	err := c.withTree(func(t *prefixtree.Tree) error {
		ap := applier{ctx: ctx, t: t, pending: pending, check: func(m stateMeta) error {
			switch {
			case !m.filled:
				skip = true
				return errNotNext // the state is not filled: the first Update brings the commit
			case m.updateID != m.pos.ID || res.First != m.pos.ID+1 || res.Prev != m.pos:
				return errNotNext
			}
			return nil
		}}
		m, err := readState(t)
		if err != nil {
			return err
		}
		ap.logID = m.logID
		claim := res.Position()
		return ap.flush(&claim, false)
	})
	if !errors.Is(err, errNotNext) {
		return err
	}
	if skip {
		return nil
	}
	if err := c.lockUpdate(ctx); err != nil {
		return err
	}
	defer c.updateMu.Unlock()
	return c.catchUpTo(ctx, res.Last)
}

// catchUpTo brings the state (the caller holds updateMu) up to id last,
// which the log holds. A store whose ids commit out of order
// (logstore.Traits.OutOfOrderIDs) may stop below it at a hole that may
// still fill: the state is then brought up again every holePoll until it
// passes last or the store's HoleWait (and a second) is over.
func (c *Instance) catchUpTo(ctx context.Context, last uint64) error {
	tr := logstore.TraitsOf(c.store)
	deadline := time.Now().Add(tr.HoleWait + time.Second)
	for {
		if _, err := c.updateLocked(ctx, true); err != nil {
			return err
		}
		m, err := c.liveState()
		switch {
		case err != nil:
			return err
		case !m.filled || m.pos.ID >= last:
			return nil
		case !tr.OutOfOrderIDs:
			// Ids commit in order: the log lost the commit since (it was
			// restored from a backup, or failed over to a lagging replica).
			return fmt.Errorf("%w: the log read after the commit ends at id %d, before the commit's %d: it lost the commit since (restored, or failed over)",
				ErrLogDiverged, m.pos.ID, last)
		case time.Now().After(deadline):
			return fmt.Errorf("the log read after the commit ends at id %d, before the commit's %d: ids below it did not commit within %v",
				m.pos.ID, last, tr.HoleWait+time.Second)
		}
		t := time.NewTimer(holePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the ids below %d to commit: %w", last, ctx.Err())
		case <-t.C:
		}
	}
}

// holePoll is how often a writer reads the log again while a hole below
// its commit keeps it from applying the commit (catchUpTo).
const holePoll = 100 * time.Millisecond
