package whycache

import (
	"context"
	"fmt"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// Item is one key/value pair of SetMulti.
type Item struct{ Key, Value []byte }

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
		li[i] = logstore.Item{Key: it.Key, Value: it.Value}
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
	if size := logstore.RecordOverhead + logstore.ItemSize(len(it.Key), len(it.Value), it.Delete); size > c.maxRecord {
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
			s := logstore.ItemSize(len(items[end].Key), len(items[end].Value), items[end].Delete)
			if end > start && size+s > c.maxRecord {
				break
			}
			size += s
			end++
		}
		group := items[start:end]
		contents, err := logstore.AppendRecord(make([]byte, 0, size), group)
		if err != nil {
			return nil, nil, fmt.Errorf("whycache: encode record: %w", err)
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
	if len(recs) == 0 {
		return c.store.LatestUpdateID(ctx)
	}
	res, err := c.store.Commit(ctx, logstore.LogID{}, recs)
	if err != nil {
		return 0, fmt.Errorf("whycache: commit: %w", err)
	}
	last := res.Last
	first := last - uint64(len(recs)-1)
	if err := c.applyLocal(ctx, first, groups); err != nil {
		return last, fmt.Errorf("whycache: committed as record %d but not applied locally (the next Update will): %w", last, err)
	}
	return last, nil
}

// applyLocal applies freshly committed records (ids first, first+1, ...)
// to the state in one batch. Records the state already passed in order are
// skipped; per-key record ids keep newer values from being overwritten. It
// does nothing to a state that was never filled or that follows another
// log.
func (c *Instance) applyLocal(ctx context.Context, first uint64, groups [][]logstore.Item) error {
	info, err := c.logInfo(ctx)
	if err != nil {
		return err
	}
	return c.withTree(func(t *prefixtree.Tree) error {
		recs := make([]pendingRecord, len(groups))
		for i, g := range groups {
			recs[i].items = g
		}
		warmItems(t, recs...)
		b, err := t.Begin()
		if err != nil {
			return err
		}
		if !filled(t) || stateLogID(t) != info.ID {
			return b.Rollback()
		}
		applied := t.Meta(metaUpdateID)
		for i, g := range groups {
			id := first + uint64(i)
			if id <= applied {
				continue
			}
			if err := applyItems(b, id, g); err != nil {
				b.Rollback()
				return err
			}
		}
		return b.Commit()
	})
}

// applyItems applies the items of record id to a batch.
func applyItems(b *prefixtree.Batch, id uint64, items []logstore.Item) error {
	for _, it := range items {
		var err error
		if it.Delete {
			_, err = b.Delete(it.Key, id)
		} else {
			_, err = b.Put(it.Key, it.Value, id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
