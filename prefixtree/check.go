package prefixtree

import (
	"bytes"
	"context"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/shm"
)

// Check verifies the whole map: the state file's structure (shm.File.Check)
// and the map's invariants: keys strictly ascending across the leaves and
// within their separators' bounds, all leaves at one depth, leaf prefixes
// matching their keys, every leaf entry live and found through the hash
// table at the same offset, every table entry reachable from its home slot,
// and the counters equal to what the structures hold. It takes the writer
// lock for its duration. Errors wrap ErrCorrupt.
func (t *Tree) Check() error { return t.CheckContext(context.Background()) }

// CheckContext is Check, giving up waiting for the writer lock when ctx is
// done (see BeginContext).
func (t *Tree) CheckContext(ctx context.Context) error {
	if err := t.f.CheckContext(ctx); err != nil {
		return err
	}
	b, err := t.BeginContext(ctx)
	if err != nil {
		return err
	}
	defer b.Rollback()
	v := b.view()
	c := checker{v: &v}
	if err := c.table(); err != nil {
		return err
	}
	if root := v.u64(shm.RootOffset(rootTree)); root != 0 {
		if err := c.node(root, 0, nil, nil); err != nil {
			return err
		}
	}
	if v.bad {
		return fmt.Errorf("prefixtree: %w: check went out of bounds", ErrCorrupt)
	}
	if c.treeKeys != c.live {
		return fmt.Errorf("prefixtree: %w: tree holds %d keys, table %d live entries", ErrCorrupt, c.treeKeys, c.live)
	}
	for _, w := range []struct {
		root int
		want uint64
		name string
	}{{rootLive, c.live, "live keys"}, {rootTombstones, c.tombs, "tombstones"}, {rootBytes, c.data, "data bytes"}} {
		if got := v.u64(shm.RootOffset(w.root)); got != w.want {
			return fmt.Errorf("prefixtree: %w: counter of %s is %d, structures hold %d", ErrCorrupt, w.name, got, w.want)
		}
	}
	return nil
}

type checker struct {
	v                       *view
	live, tombs, data       uint64
	treeKeys                uint64
	leafDepth               int
	prev                    []byte
	havePrev, haveLeafDepth bool
}

func (c *checker) table() error {
	v := c.v
	tab := v.u64(shm.RootOffset(rootTable))
	if tab == 0 {
		return nil
	}
	capacity, used := v.u64(tab), v.u64(tab+8)
	var nonEmpty uint64
	for i := uint64(0); i < capacity && !v.bad; i++ {
		s := v.u64(tab + tableHeader + i*8)
		if s == 0 {
			continue
		}
		nonEmpty++
		if s == slotDeleted {
			continue
		}
		off := slotOff(s)
		key := v.entryKey(off)
		h := xxhash.Sum64(key)
		if !tagMatches(s, h) {
			return fmt.Errorf("prefixtree: %w: slot %d has tag %#x, key hashes to %#x", ErrCorrupt, i, s>>slotTagShift, h>>slotTagShift)
		}
		_, tomb := v.entryValue(off)
		if want := makeSlot(h, off, liveSize(v, off, tomb)); s != want {
			return fmt.Errorf("prefixtree: %w: slot %d is %#x, its entry makes %#x", ErrCorrupt, i, s, want)
		}
		if v.findEntry(key, h) != off {
			return fmt.Errorf("prefixtree: %w: entry %d (key %q) not reachable by probing", ErrCorrupt, off, key)
		}
		if val, tomb := v.entryValue(off); tomb {
			c.tombs++
		} else {
			c.live++
			c.data += uint64(len(key) + len(val))
		}
	}
	if nonEmpty != used {
		return fmt.Errorf("prefixtree: %w: table says %d used slots, holds %d", ErrCorrupt, used, nonEmpty)
	}
	if used*maxLoadDenom > capacity*maxLoadNum {
		return fmt.Errorf("prefixtree: %w: table %d/%d over its load limit", ErrCorrupt, used, capacity)
	}
	return nil
}

// node checks the subtree at n, whose keys must lie in [lo, hi).
func (c *checker) node(n uint64, depth int, lo, hi []byte) error {
	v := c.v
	if depth >= maxDepth {
		return fmt.Errorf("prefixtree: %w: tree deeper than %d", ErrCorrupt, maxDepth)
	}
	cnt := v.nodeCount(n)
	if v.nodeKind(n) == kindLeaf {
		if c.haveLeafDepth && depth != c.leafDepth {
			return fmt.Errorf("prefixtree: %w: leaves at depths %d and %d", ErrCorrupt, c.leafDepth, depth)
		}
		c.leafDepth, c.haveLeafDepth = depth, true
		if cnt == 0 {
			return fmt.Errorf("prefixtree: %w: empty leaf %d", ErrCorrupt, n)
		}
		for i := uint64(0); i < cnt && !v.bad; i++ {
			off := v.u64(leafSlotOff(n, i) + 8)
			key := v.entryKey(off)
			if _, tomb := v.entryValue(off); tomb {
				return fmt.Errorf("prefixtree: %w: tombstone %q in a leaf", ErrCorrupt, key)
			}
			if v.u64(leafSlotOff(n, i)) != keyPrefix(key) {
				return fmt.Errorf("prefixtree: %w: leaf slot prefix of %q is wrong", ErrCorrupt, key)
			}
			if c.havePrev && bytes.Compare(c.prev, key) >= 0 {
				return fmt.Errorf("prefixtree: %w: keys out of order: %q then %q", ErrCorrupt, c.prev, key)
			}
			if (lo != nil && bytes.Compare(key, lo) < 0) || (hi != nil && bytes.Compare(key, hi) >= 0) {
				return fmt.Errorf("prefixtree: %w: key %q outside its separators [%q, %q)", ErrCorrupt, key, lo, hi)
			}
			if v.findEntry(key, xxhash.Sum64(key)) != off {
				return fmt.Errorf("prefixtree: %w: leaf key %q not in the hash table at %d", ErrCorrupt, key, off)
			}
			c.prev, c.havePrev = append(c.prev[:0], key...), true
			c.treeKeys++
		}
		return nil
	}
	seps := make([][]byte, cnt)
	for i := range seps {
		e := internalEntryOff(n, uint64(i))
		seps[i] = append([]byte(nil), v.sepKey(v.u64(e+8))...)
		if v.u64(e) != keyPrefix(seps[i]) {
			return fmt.Errorf("prefixtree: %w: separator prefix of %q is wrong", ErrCorrupt, seps[i])
		}
		if i > 0 && bytes.Compare(seps[i-1], seps[i]) >= 0 {
			return fmt.Errorf("prefixtree: %w: separators out of order in node %d", ErrCorrupt, n)
		}
	}
	for i := -1; i < int(cnt) && !v.bad; i++ {
		clo, chi := lo, hi
		if i >= 0 {
			clo = seps[i]
		}
		if i+1 < int(cnt) {
			chi = seps[i+1]
		}
		if err := c.node(v.internalChild(n, i), depth+1, clo, chi); err != nil {
			return err
		}
	}
	return nil
}

// liveSize is the size a slot records for the entry at off: its block size
// if live, 0 for a tombstone.
func liveSize(v *view, off uint64, tomb bool) uint64 {
	if tomb {
		return 0
	}
	return v.entryBlockSize(off)
}
