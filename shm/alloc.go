package shm

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sort"
)

// The allocator hands out blocks whose sizes are one of a fixed set of size
// classes: multiples of 8 up to 256 bytes, multiples of 16 up to 1 KiB, then
// four classes per doubling (at most 25% waste). Free blocks of each class
// form a singly linked list whose head is in the header:
//
//	free block: u64 next free block of the class (0 ends the list)
//	            u64 freeMagic | class index
//
// Invariants (checked by Check):
//   - every byte in [HeapStart, bump) belongs to exactly one block, either
//     reachable from the roots (or the journal) or on a free list;
//   - a block's offset is a multiple of Align and its size is its class size;
//   - free lists hold no cycles and only blocks of their class.
//
// The allocator state is not journaled: blocks allocated by a transaction
// that rolls back are returned to the free lists, frees take effect only at
// commit, and after a writer dies the free lists are rebuilt from the blocks
// reachable from the roots.

const (
	// splitRun is how many blocks of the requested class a split cuts
	// from the rest of a larger block at most.
	splitRun  = 64
	freeMagic = 0xF7EEB10C << 32
	minBlock  = 16
	maxBlock  = 1 << 40
)

var classSizes = buildClasses()

func buildClasses() []uint64 {
	var c []uint64
	for s := uint64(minBlock); s <= 256; s += 8 {
		c = append(c, s)
	}
	for s := uint64(272); s <= 1024; s += 16 {
		c = append(c, s)
	}
	for p := uint64(1024); p < maxBlock; p *= 2 {
		c = append(c, p+p/4, p+p/2, p+3*p/4, 2*p)
	}
	return c
}

// numClasses is the number of size classes (and free list heads).
var numClasses = len(classSizes)

// classOf returns the index of the smallest class that holds n bytes.
func classOf(n uint64) (int, bool) {
	switch {
	case n > maxBlock:
		return 0, false
	case n <= minBlock:
		return 0, true
	case n <= 256:
		return int((n+7)/8 - 2), true
	case n <= 1024:
		return 31 + int((n-256+15)/16) - 1, true
	}
	return sort.Search(len(classSizes), func(i int) bool { return classSizes[i] >= n }), true
}

// BlockSize returns the size of the block that Alloc(n) returns, or 0 if no
// block can hold n bytes.
func BlockSize(n uint64) uint64 {
	c, ok := classOf(n)
	if !ok {
		return 0
	}
	return classSizes[c]
}

func freeHeadOff(c int) uint64 { return offFreeHeads + 8*uint64(c) }

// allocLocked returns a block of class c: the head of its free list, else
// the front of a free block of the smallest larger class that has one (the
// rest goes back to the free lists), else new space at the end of the heap
// (growing the file if needed).
func (f *File) allocLocked(c int) (uint64, error) {
	size := classSizes[c]
	m := f.mem
	if binary.LittleEndian.Uint64(m[freeHeadOff(c):]) != 0 {
		return f.popLocked(c)
	}
	for big := f.nextFreeClass(c + 1); big >= 0; big = f.nextFreeClass(big + 1) {
		rest := classSizes[big] - size
		if rest != 0 && rest < minBlock {
			continue
		}
		off, err := f.popLocked(big)
		if err != nil {
			return 0, err
		}
		// Cut a run of blocks of the requested class from the rest, so
		// that the allocations that follow do not split again.
		pos, end := off+size, off+classSizes[big]
		for n := 0; n < splitRun && pos+size <= end; n++ {
			if left := end - pos - size; left != 0 && left < minBlock {
				break
			}
			f.freeLocked(pos, c)
			pos += size
		}
		if err := f.carveLocked(pos, end); err != nil {
			return 0, err
		}
		return off, nil
	}
	bump := binary.LittleEndian.Uint64(m[offBump:])
	end := bump + size
	if end < bump {
		return 0, fmt.Errorf("%w: heap overflow", ErrNoSpace)
	}
	if err := f.growLocked(end); err != nil {
		return 0, err
	}
	binary.LittleEndian.PutUint64(m[offBump:], end)
	return bump, nil
}

// popLocked takes the head of free list c, which is not empty.
func (f *File) popLocked(c int) (uint64, error) {
	m := f.mem
	head := binary.LittleEndian.Uint64(m[freeHeadOff(c):])
	if err := f.checkFreeBlock(head, c); err != nil {
		return 0, err
	}
	next := binary.LittleEndian.Uint64(m[head:])
	binary.LittleEndian.PutUint64(m[freeHeadOff(c):], next)
	if next == 0 {
		f.setFreeBit(c, false)
	}
	return head, nil
}

// freeLocked pushes block off of class c onto its free list.
func (f *File) freeLocked(off uint64, c int) {
	m := f.mem
	binary.LittleEndian.PutUint64(m[off:], binary.LittleEndian.Uint64(m[freeHeadOff(c):]))
	binary.LittleEndian.PutUint64(m[off+8:], freeMagic|uint64(c))
	binary.LittleEndian.PutUint64(m[freeHeadOff(c):], off)
	f.setFreeBit(c, true)
}

func (f *File) setFreeBit(c int, on bool) {
	w := offFreeMask + 8*uint64(c/64)
	v := binary.LittleEndian.Uint64(f.mem[w:])
	if on {
		v |= 1 << (c % 64)
	} else {
		v &^= 1 << (c % 64)
	}
	binary.LittleEndian.PutUint64(f.mem[w:], v)
}

// nextFreeClass returns the smallest class >= c whose free list is not
// empty, or -1.
func (f *File) nextFreeClass(c int) int {
	for ; c < numClasses; c = (c/64 + 1) * 64 {
		v := binary.LittleEndian.Uint64(f.mem[offFreeMask+8*uint64(c/64):]) >> (c % 64)
		if v != 0 {
			if c += bits.TrailingZeros64(v); c < numClasses {
				return c
			}
			return -1
		}
	}
	return -1
}

// checkFreeBlock validates a free list entry before the allocator trusts it.
func (f *File) checkFreeBlock(off uint64, c int) error {
	bump := binary.LittleEndian.Uint64(f.mem[offBump:])
	if off < HeapStart || off%Align != 0 || off+classSizes[c] > bump {
		return fmt.Errorf("%w: free list %d holds block %d outside the heap [%d, %d)", ErrCorrupt, c, off, HeapStart, bump)
	}
	if tag := binary.LittleEndian.Uint64(f.mem[off+8:]); tag != freeMagic|uint64(c) {
		return fmt.Errorf("%w: free block %d of class %d has tag %#x", ErrCorrupt, off, c, tag)
	}
	return nil
}

// block is an allocated range of the heap.
type block struct{ off, size uint64 }

// sortAndCheckBlocks sorts blocks by offset and verifies that they lie in
// the heap and do not overlap.
func sortAndCheckBlocks(blocks []block, bump uint64, what string) error {
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].off < blocks[j].off })
	prevEnd := uint64(HeapStart)
	for i, b := range blocks {
		if b.off < HeapStart || b.off%Align != 0 || b.size == 0 || b.off+b.size > bump || b.off+b.size < b.off {
			return fmt.Errorf("%w: %s block [%d, +%d) outside the heap [%d, %d)", ErrCorrupt, what, b.off, b.size, HeapStart, bump)
		}
		if i > 0 && b.off < prevEnd {
			return fmt.Errorf("%w: %s blocks overlap at %d (previous ends at %d)", ErrCorrupt, what, b.off, prevEnd)
		}
		prevEnd = b.off + b.size
	}
	return nil
}

// rebuildFreeListsLocked replaces the free lists by the gaps between the
// given in-use blocks, which it sorts and validates.
func (f *File) rebuildFreeListsLocked(used []block) error {
	bump := binary.LittleEndian.Uint64(f.mem[offBump:])
	if err := sortAndCheckBlocks(used, bump, "reachable"); err != nil {
		return err
	}
	for c := 0; c < numClasses; c++ {
		binary.LittleEndian.PutUint64(f.mem[freeHeadOff(c):], 0)
	}
	for w := uint64(0); w < maxClasses/64; w++ {
		binary.LittleEndian.PutUint64(f.mem[offFreeMask+8*w:], 0)
	}
	pos := uint64(HeapStart)
	for _, b := range append(used, block{off: bump}) {
		if err := f.carveLocked(pos, b.off); err != nil {
			return err
		}
		pos = b.off + b.size
	}
	return nil
}

// carveLocked puts [from, to) on the free lists as the fewest class-sized
// blocks.
func (f *File) carveLocked(from, to uint64) error {
	for from < to {
		gap := to - from
		c := sort.Search(len(classSizes), func(i int) bool { return classSizes[i] > gap }) - 1
		for c >= 0 && gap-classSizes[c] != 0 && gap-classSizes[c] < minBlock {
			c--
		}
		if c < 0 {
			return fmt.Errorf("%w: gap of %d bytes at %d cannot be split into blocks", ErrCorrupt, gap, from)
		}
		f.freeLocked(from, c)
		from += classSizes[c]
	}
	return nil
}
