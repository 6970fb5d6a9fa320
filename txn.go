package whycache

import (
	"bytes"
	"context"
	"time"

	"github.com/whycache/whycache/logstore"
)

// Txn is the buffer of a transaction (Instance.Txn): writes are kept in
// memory until the transaction's function returns, and reads see them.
// A Txn is not safe for concurrent use, and only valid during the call of
// the function it was given to; after that its methods fail with
// ErrTxnDone.
type Txn struct {
	c     *Instance
	index map[string]int // key -> its item in items
	items []logstore.Item
	done  bool
}

// Txn runs fn with a transaction and then commits every write fn made
// through it as one store commit of one or more records (several when
// they exceed Options.MaxUpdateSize), which readers on every machine see
// all at once or not at all: this machine applies it in one batch, and
// Update never applies part of a commit (up to 256 MiB of records). It
// returns the id of the last record written.
//
// Nothing is committed when fn returns an error (Txn returns it as is) or
// panics (Txn panics again, with the same value), or when fn made no
// write (Txn returns 0 and nil). A key written several times keeps its
// last write. Txn gives atomic visibility only, not isolation: the reads
// of fn are not locked against other writers, whose writes to the same
// keys, before or after the commit, are ordered by the log as any writes
// are (the last one wins). Errors of the commit are those of SetMulti.
func (c *Instance) Txn(ctx context.Context, fn func(tx *Txn) error) (uint64, error) {
	tx := &Txn{c: c, index: map[string]int{}}
	if err := runTxn(tx, fn); err != nil {
		return 0, err
	}
	if len(tx.items) == 0 {
		return 0, nil
	}
	return c.commitItems(ctx, tx.items)
}

// runTxn calls fn and ends tx, even when fn panics.
func runTxn(tx *Txn, fn func(tx *Txn) error) error {
	defer func() { tx.done = true }()
	return fn(tx)
}

// Get returns the value of key as the transaction sees it: its own last
// write of key if any (ErrNotFound after its delete, or once its expiry
// passed), else the value in the state (see Instance.Get).
func (tx *Txn) Get(key []byte) ([]byte, error) {
	if tx.done {
		return nil, ErrTxnDone
	}
	i, ok := tx.index[string(key)]
	if !ok {
		return tx.c.Get(key)
	}
	it := &tx.items[i]
	if it.Delete || (it.Expires != 0 && time.Now().UnixNano() >= it.Expires) {
		return nil, ErrNotFound
	}
	return bytes.Clone(it.Value), nil
}

// Set buffers key=value. The key and value are copied. Errors:
// ErrEmptyKey, ErrTooLarge (see Instance.Set), ErrTxnDone.
func (tx *Txn) Set(key, value []byte) error {
	return tx.put(logstore.Item{Key: key, Value: value})
}

// SetWithTTL buffers key=value expiring ttl from now (see
// Instance.SetWithTTL); a ttl of zero or less fails with ErrBadTTL.
func (tx *Txn) SetWithTTL(key, value []byte, ttl time.Duration) error {
	exp, err := ttlExpiry(ttl)
	if err != nil {
		return err
	}
	return tx.put(logstore.Item{Key: key, Value: value, Expires: exp})
}

// Delete buffers a delete of key.
func (tx *Txn) Delete(key []byte) error {
	return tx.put(logstore.Item{Key: key, Delete: true})
}

// put validates it and buffers a copy of it, replacing an earlier write of
// its key.
func (tx *Txn) put(it logstore.Item) error {
	if tx.done {
		return ErrTxnDone
	}
	if err := tx.c.validateItem(it); err != nil {
		return err
	}
	it.Key, it.Value = bytes.Clone(it.Key), bytes.Clone(it.Value)
	if i, ok := tx.index[string(it.Key)]; ok {
		tx.items[i] = it
		return nil
	}
	tx.index[string(it.Key)] = len(tx.items)
	tx.items = append(tx.items, it)
	return nil
}
