package prefixtree

import (
	"fmt"

	"github.com/whycache/whycache/shm"
)

// walk reports every block of the map to the shm allocator: the hash table,
// every entry (through the table, which holds each exactly once), the tree
// nodes and the separator blocks. It is shm.Options.Walk for map files.
func walk(f *shm.File, mark func(off, size uint64) error) error {
	v := view{m: f.Mem(), size: f.Size()}
	if tab := v.u64(shm.RootOffset(rootTable)); tab != 0 {
		capacity := v.u64(tab)
		if capacity == 0 || capacity&(capacity-1) != 0 || !v.ok(tab, tableSize(capacity)) {
			return fmt.Errorf("prefixtree: %w: hash table at %d has capacity %d", ErrCorrupt, tab, capacity)
		}
		if err := mark(tab, tableSize(capacity)); err != nil {
			return err
		}
		for i := uint64(0); i < capacity && !v.bad; i++ {
			s := v.u64(tab + tableHeader + i*8)
			if s == 0 || s == slotDeleted {
				continue
			}
			off := slotOff(s)
			if err := mark(off, v.entryBlockSize(off)); err != nil {
				return err
			}
		}
	}
	if root := v.u64(shm.RootOffset(rootTree)); root != 0 {
		budget := v.size / nodeSize
		if err := walkNode(&v, root, 0, &budget, mark); err != nil {
			return err
		}
	}
	if v.bad {
		return fmt.Errorf("prefixtree: %w: walk went out of bounds", ErrCorrupt)
	}
	return nil
}

func walkNode(v *view, n uint64, depth int, budget *uint64, mark func(off, size uint64) error) error {
	if depth >= maxDepth || *budget == 0 {
		return fmt.Errorf("prefixtree: %w: tree deeper than %d or with a cycle", ErrCorrupt, maxDepth)
	}
	*budget--
	if err := mark(n, nodeSize); err != nil {
		return err
	}
	if v.nodeKind(n) != kindInternal {
		if v.nodeKind(n) != kindLeaf {
			return fmt.Errorf("prefixtree: %w: node %d has kind %d", ErrCorrupt, n, v.nodeKind(n))
		}
		return nil
	}
	cnt := v.nodeCount(n)
	if err := walkNode(v, v.internalChild(n, -1), depth+1, budget, mark); err != nil {
		return err
	}
	for i := uint64(0); i < cnt && !v.bad; i++ {
		e := internalEntryOff(n, i)
		sep := v.u64(e + 8)
		if err := mark(sep, sepSize(v.u32(sep))); err != nil {
			return err
		}
		if err := walkNode(v, v.u64(e+16), depth+1, budget, mark); err != nil {
			return err
		}
	}
	return nil
}
