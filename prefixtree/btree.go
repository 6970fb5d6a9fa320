package prefixtree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/whycache/whycache/shm"
)

// Writer side of the B+tree. Nodes that already exist are changed through
// journaled writes; nodes made by a split are filled fresh before they
// become reachable.

func nodeHeaderWord(kind, count uint64) uint64 { return kind | count<<16 }

func (b *Batch) setCount(n, kind, count uint64) {
	b.tx.Put64(n, nodeHeaderWord(kind, count))
}

// newNode allocates a node and fills it with body (slots or child0+entries).
func (b *Batch) newNode(kind uint64, count uint64, body []byte) uint64 {
	n, mem := b.allocFresh(nodeSize)
	if mem == nil {
		return 0
	}
	clear(mem)
	binary.LittleEndian.PutUint64(mem, nodeHeaderWord(kind, count))
	copy(mem[nodeHeader:], body)
	return n
}

// newSep allocates a separator block holding key.
func (b *Batch) newSep(key []byte) uint64 {
	s, mem := b.allocFresh(sepSize(uint64(len(key))))
	if mem == nil {
		return 0
	}
	binary.LittleEndian.PutUint64(mem, uint64(len(key)))
	copy(mem[sepHeader:], key)
	return s
}

func (b *Batch) freeSep(v *view, s uint64) {
	b.tx.Free(s, sepSize(v.u32(s)))
}

// treeInsert adds key (absent from the tree) with its entry.
func (b *Batch) treeInsert(key []byte, entry uint64) {
	if b.err != nil || entry == 0 {
		return
	}
	kp := keyPrefix(key)
	var slot [leafSlot]byte
	binary.LittleEndian.PutUint64(slot[:], kp)
	binary.LittleEndian.PutUint64(slot[8:], entry)
	v := b.view()
	root := v.u64(shm.RootOffset(rootTree))
	if root == 0 {
		b.tx.Put64(shm.RootOffset(rootTree), b.newNode(kindLeaf, 1, slot[:]))
		return
	}
	var path [maxDepth]pathElem
	leaf, depth, upper := v.descend(root, kp, key, &path)
	pos := v.lowerBound(leaf, kp, key)
	cnt := v.nodeCount(leaf)
	if b.check(&v, "insert") != nil {
		return
	}
	if cnt < leafCap {
		// One journaled range: the slots from pos, shifted right, and the
		// new slot in the gap.
		if r := b.tx.Region(leafSlotOff(leaf, pos), (cnt+1-pos)*leafSlot); r != nil {
			copy(r[leafSlot:], r[:(cnt-pos)*leafSlot])
			copy(r, slot[:])
		}
		b.setCount(leaf, kindLeaf, cnt+1)
		return
	}
	// Split: the left half stays, the right half moves to a new leaf.
	all := slices.Concat(v.bytes(leafSlotOff(leaf, 0), pos*leafSlot), slot[:], v.bytes(leafSlotOff(leaf, pos), (cnt-pos)*leafSlot))
	half := (cnt + 1) / 2
	rightmost := upper == 0 && pos == cnt
	if rightmost {
		// Appending past the largest key (loading sorted keys, say): keep
		// the full leaf and start a new one, so sorted loads fill leaves.
		half = cnt
	}
	right := b.newNode(kindLeaf, cnt+1-half, all[half*leafSlot:])
	b.tx.PutBytes(leafSlotOff(leaf, 0), all[:half*leafSlot])
	b.setCount(leaf, kindLeaf, half)
	v = b.view()
	sepKey := v.entryKey(binary.LittleEndian.Uint64(all[half*leafSlot+8:]))
	if b.check(&v, "split") != nil {
		return
	}
	b.insertIntoParent(&path, depth, keyPrefix(sepKey), b.newSep(sepKey), right, rightmost)
}

// insertIntoParent adds the entry (prefix, sep, child) to the parent of the
// node at path depth d, splitting upwards as needed.
func (b *Batch) insertIntoParent(path *[maxDepth]pathElem, d int, prefix, sep, child uint64, rightmost bool) {
	if b.err != nil {
		return
	}
	var e [internalEntry]byte
	binary.LittleEndian.PutUint64(e[:], prefix)
	binary.LittleEndian.PutUint64(e[8:], sep)
	binary.LittleEndian.PutUint64(e[16:], child)
	v := b.view()
	if d == 0 {
		var body [8 + internalEntry]byte
		binary.LittleEndian.PutUint64(body[:], v.u64(shm.RootOffset(rootTree)))
		copy(body[8:], e[:])
		b.tx.Put64(shm.RootOffset(rootTree), b.newNode(kindInternal, 1, body[:]))
		return
	}
	n := path[d-1].node
	idx := uint64(path[d-1].child + 1)
	cnt := v.nodeCount(n)
	if b.check(&v, "insert") != nil {
		return
	}
	if cnt < internalCap {
		if r := b.tx.Region(internalEntryOff(n, idx), (cnt+1-idx)*internalEntry); r != nil {
			copy(r[internalEntry:], r[:(cnt-idx)*internalEntry])
			copy(r, e[:])
		}
		b.setCount(n, kindInternal, cnt+1)
		return
	}
	all := slices.Concat(v.bytes(internalEntryOff(n, 0), idx*internalEntry), e[:], v.bytes(internalEntryOff(n, idx), (cnt-idx)*internalEntry))
	mid := (cnt + 1) / 2
	if rightmost && idx == cnt {
		mid = cnt // the new entry moves up; the new node starts with its child alone
	}
	up := all[mid*internalEntry : (mid+1)*internalEntry]
	// The middle entry moves up; its child becomes the new node's child0.
	right := b.newNode(kindInternal, cnt-mid, slices.Concat(up[16:24], all[(mid+1)*internalEntry:]))
	b.tx.PutBytes(internalEntryOff(n, 0), all[:mid*internalEntry])
	b.setCount(n, kindInternal, mid)
	b.insertIntoParent(path, d-1, binary.LittleEndian.Uint64(up), binary.LittleEndian.Uint64(up[8:]), right, rightmost)
}

// findLeafSlot returns the leaf and slot of key, whose entry must be at
// off.
func (b *Batch) findLeafSlot(key []byte, off uint64) (leaf, pos uint64) {
	v := b.view()
	kp := keyPrefix(key)
	leaf, _, _ = v.descend(v.u64(shm.RootOffset(rootTree)), kp, key, nil)
	pos = v.lowerBound(leaf, kp, key)
	if b.check(&v, "find") == nil && (pos >= v.nodeCount(leaf) || v.u64(leafSlotOff(leaf, pos)+8) != off) {
		b.fail(fmt.Errorf("prefixtree: %w: key %q missing from the tree", ErrCorrupt, key))
	}
	return leaf, pos
}

// treeRemove removes key, whose entry is at off, from the tree, freeing
// nodes that become empty.
func (b *Batch) treeRemove(key []byte, off uint64) {
	if b.err != nil {
		return
	}
	v := b.view()
	kp := keyPrefix(key)
	var path [maxDepth]pathElem
	leaf, depth, _ := v.descend(v.u64(shm.RootOffset(rootTree)), kp, key, &path)
	pos := v.lowerBound(leaf, kp, key)
	cnt := v.nodeCount(leaf)
	if b.check(&v, "remove") != nil {
		return
	}
	if pos >= cnt || v.u64(leafSlotOff(leaf, pos)+8) != off || !bytes.Equal(v.entryKey(off), key) {
		b.fail(fmt.Errorf("prefixtree: %w: key %q missing from the tree", ErrCorrupt, key))
		return
	}
	if pos+1 < cnt {
		b.tx.Move(leafSlotOff(leaf, pos), leafSlotOff(leaf, pos+1), (cnt-pos-1)*leafSlot)
	}
	if cnt > 1 {
		b.setCount(leaf, kindLeaf, cnt-1)
		return
	}
	b.tx.Free(leaf, nodeSize)
	if depth == 0 {
		b.tx.Put64(shm.RootOffset(rootTree), 0)
		return
	}
	b.removeChild(&path, depth-1)
}

// removeChild removes the child taken at path[d] from its node, freeing the
// node too if it has no child left, and collapses a root with one child.
func (b *Batch) removeChild(path *[maxDepth]pathElem, d int) {
	v := b.view()
	n, c := path[d].node, path[d].child
	cnt := v.nodeCount(n)
	if b.check(&v, "remove") != nil {
		return
	}
	switch {
	case c >= 0:
		b.freeSep(&v, v.u64(internalEntryOff(n, uint64(c))+8))
		if uint64(c)+1 < cnt {
			b.tx.Move(internalEntryOff(n, uint64(c)), internalEntryOff(n, uint64(c)+1), (cnt-uint64(c)-1)*internalEntry)
		}
	case cnt > 0:
		b.tx.Put64(n+nodeHeader, v.u64(internalEntryOff(n, 0)+16))
		b.freeSep(&v, v.u64(internalEntryOff(n, 0)+8))
		if cnt > 1 {
			b.tx.Move(internalEntryOff(n, 0), internalEntryOff(n, 1), (cnt-1)*internalEntry)
		}
	default:
		b.tx.Free(n, nodeSize)
		if d == 0 {
			b.tx.Put64(shm.RootOffset(rootTree), 0)
			return
		}
		b.removeChild(path, d-1)
		return
	}
	b.setCount(n, kindInternal, cnt-1)
	if d == 0 && cnt-1 == 0 {
		// The root has a single child left: that child becomes the root.
		v = b.view()
		b.tx.Put64(shm.RootOffset(rootTree), v.u64(n+nodeHeader))
		b.tx.Free(n, nodeSize)
	}
}
