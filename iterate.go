package whycache

import (
	"iter"

	"github.com/whycache/whycache/prefixtree"
)

// All returns an iterator over every key and value in ascending byte order
// of keys. Each step yields the smallest key greater than the last one
// yielded, as the state is at that step: keys created ahead of the cursor
// during iteration appear, keys behind it do not, nothing is yielded twice,
// and every key that exists unchanged for the whole iteration is yielded.
// The yielded slices are copies the caller owns. An invalid state yields
// nothing; so does a state error (use Scan to see errors).
func (c *Instance) All() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		_ = c.Scan(nil, nil, func(k, v []byte) bool {
			return yield(append([]byte(nil), k...), append([]byte(nil), v...))
		})
	}
}

// Keys returns an iterator over every key, like All.
func (c *Instance) Keys() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		_ = c.Scan(nil, nil, func(k, _ []byte) bool { return yield(append([]byte(nil), k...)) })
	}
}

// Values returns an iterator over every value in ascending order of keys,
// like All.
func (c *Instance) Values() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		_ = c.Scan(nil, nil, func(_, v []byte) bool { return yield(append([]byte(nil), v...)) })
	}
}

// Scan calls fn for each key >= start that has the given prefix (nil for
// none), in ascending order, with the semantics of All, until fn returns
// false. The slices passed to fn are valid only during the call. It returns
// ErrInvalidState for a state never filled, and state errors.
func (c *Instance) Scan(start, prefix []byte, fn func(key, value []byte) bool) error {
	t, err := c.tree()
	if err != nil {
		return err
	}
	if !filled(t) {
		return ErrInvalidState
	}
	cur := t.Cursor()
	if prefix != nil {
		cur.SetPrefix(prefix)
		if string(start) > string(prefix) {
			cur.Seek(start)
		}
	} else {
		cur.Seek(start)
	}
	for cur.Next() {
		if !fn(cur.Key(), cur.Value()) {
			return nil
		}
	}
	if err := cur.Err(); err != nil {
		if prefixtree.IsRetired(err) {
			// The state was swapped: finish on the new one after the last key.
			return c.scanAfterSwap(t, cur, prefix, fn)
		}
		return wrapStateErr(err)
	}
	return nil
}

// scanAfterSwap continues an iteration whose state was retired, on the
// state now at the path, after the last key yielded.
func (c *Instance) scanAfterSwap(old *prefixtree.Tree, cur *prefixtree.Cursor, prefix []byte, fn func(key, value []byte) bool) error {
	last := append([]byte(nil), cur.Key()...)
	t, err := c.openTree(old)
	if err != nil {
		return err
	}
	if !filled(t) {
		return nil
	}
	nc := t.Cursor()
	if prefix != nil {
		nc.SetPrefix(prefix)
	}
	if last != nil {
		nc.Seek(last)
	}
	for nc.Next() {
		if last != nil && string(nc.Key()) == string(last) {
			continue
		}
		if !fn(nc.Key(), nc.Value()) {
			return nil
		}
	}
	return wrapStateErr(nc.Err())
}
