package prefixtree

import (
	"bytes"
	"fmt"
	"iter"
	"time"

	"github.com/whycache/whycache/shm"
)

// Cursor iterates over the map in ascending byte order of keys without
// locking. Each Next moves to the smallest key greater than the current one
// as the map is at that moment: keys inserted ahead of the cursor appear,
// keys behind it do not, nothing is returned twice, and every key present
// and unchanged for the whole iteration is returned.
//
// Expired entries (Batch.PutExpiring) are skipped, by the clock at the
// time each group of keys is read.
//
// A Cursor is not safe for concurrent use. Key and Value are valid until the
// next call to Next or Seek.
type Cursor struct {
	t       *Tree
	last    []byte // the current key (a copy), nil before the first
	from    []byte // seek target before the first Next
	prefix  []byte
	started bool
	done    bool
	err     error

	// batch holds the keys after last as read in one lock-free read, valid
	// while the file's counter equals seq.
	seq   uint64
	arena []byte
	items []cursorItem
	idx   int
	key   []byte
	value []byte
	id    uint64
	exp   int64
}

type cursorItem struct {
	kStart, kEnd, vEnd int
	id                 uint64
	exp                int64
}

// Cursor returns a cursor positioned before the first key.
func (t *Tree) Cursor() *Cursor { return &Cursor{t: t} }

// Seek positions the cursor before the first key >= key.
func (c *Cursor) Seek(key []byte) {
	c.from = append(c.from[:0], key...)
	c.last, c.started, c.done, c.items, c.idx = nil, false, false, nil, 0
}

// SetPrefix limits the cursor to keys starting with prefix and seeks to
// the first of them.
func (c *Cursor) SetPrefix(prefix []byte) {
	c.prefix = append([]byte{}, prefix...)
	c.Seek(prefix)
}

// Next advances to the next key and reports whether there is one. It
// returns false at the end or on an error (see Err); in a damaged tree
// whose keys do not ascend, that error wraps ErrCorrupt.
func (c *Cursor) Next() bool {
	if c.done {
		return false
	}
	if c.idx+1 < len(c.items) && c.t.f.ReadValid(c.seq) {
		c.idx++
	} else if !c.fill() {
		c.done = true
		return false
	}
	it := c.items[c.idx]
	c.key = c.arena[it.kStart:it.kEnd:it.kEnd]
	c.value = c.arena[it.kEnd:it.vEnd:it.vEnd]
	c.id, c.exp = it.id, it.exp
	if c.started && bytes.Compare(c.key, c.last) <= 0 {
		// Only a damaged tree (unsorted or repeated leaf slots) yields a
		// key that does not follow the last one; going on could repeat
		// it forever.
		c.err = fmt.Errorf("prefixtree: %w: iteration went from %q back to %q", ErrCorrupt, c.last, c.key)
		c.done = true
		return false
	}
	if c.prefix != nil && !bytes.HasPrefix(c.key, c.prefix) {
		c.done = true
		return false
	}
	c.last = append(c.last[:0], c.key...)
	c.started = true
	return true
}

// Key returns the current key.
func (c *Cursor) Key() []byte { return c.key }

// Value returns the current value.
func (c *Cursor) Value() []byte { return c.value }

// ID returns the id of the record that wrote the current value.
func (c *Cursor) ID() uint64 { return c.id }

// Expires returns the expiry of the current entry, in nanoseconds since
// the Unix epoch, or 0 if it never expires.
func (c *Cursor) Expires() int64 { return c.exp }

// Err returns the error that ended the iteration, if any.
func (c *Cursor) Err() error { return c.err }

// fill reads the keys following the cursor into the batch.
func (c *Cursor) fill() bool {
	target, inclusive := c.last, false
	if !c.started {
		target, inclusive = c.from, true
	}
	now := time.Now().UnixNano()
	seq, err := c.t.read(func(v *view) {
		c.arena, c.items, c.idx = c.arena[:0], c.items[:0], 0
		c.collect(v, target, inclusive, now)
	})
	if err != nil {
		c.err = err
		return false
	}
	c.seq = seq
	return len(c.items) > 0
}

// collect appends up to cursorBatchMax entries after target (or at it, if
// inclusive) from one leaf, moving right past empty ranges; entries
// expired at now are left out.
func (c *Cursor) collect(v *view, target []byte, inclusive bool, now int64) {
	for hop := 0; hop < maxIterHops && !v.bad; hop++ {
		root := v.u64(shm.RootOffset(rootTree))
		if root == 0 {
			return
		}
		kp := keyPrefix(target)
		leaf, _, upper := v.descend(root, kp, target, nil)
		pos := v.lowerBound(leaf, kp, target)
		cnt := v.nodeCount(leaf)
		if !inclusive && pos < cnt && v.compareSlot(kp, target, leaf, pos) == 0 {
			pos++
		}
		for ; pos < cnt && len(c.items) < cursorBatchMax && !v.bad; pos++ {
			off := v.u64(leafSlotOff(leaf, pos) + 8)
			k := v.entryKey(off)
			val, exp, _ := v.entryValueExp(off)
			if exp != 0 && exp <= now {
				continue
			}
			start := len(c.arena)
			c.arena = append(c.arena, k...)
			kEnd := len(c.arena)
			c.arena = append(c.arena, val...)
			c.items = append(c.items, cursorItem{start, kEnd, len(c.arena), v.u64(off + 8), exp})
		}
		if len(c.items) > 0 || upper == 0 {
			return
		}
		target, inclusive = v.sepKey(upper), true
	}
}

// All returns an iterator over keys >= start (all keys for nil start) and
// their values, in ascending key order. The yielded slices are valid only
// until the next iteration step. Iteration stops silently on an error; use
// a Cursor to see it.
func (t *Tree) All(start []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		c := t.Cursor()
		c.Seek(start)
		for c.Next() {
			if !yield(c.Key(), c.Value()) {
				return
			}
		}
	}
}

// Prefix returns an iterator over the keys starting with prefix, like All.
func (t *Tree) Prefix(prefix []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		c := t.Cursor()
		c.SetPrefix(prefix)
		for c.Next() {
			if !yield(c.Key(), c.Value()) {
				return
			}
		}
	}
}
