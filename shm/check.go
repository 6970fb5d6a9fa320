package shm

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Check verifies the file's structure: the header, the journal, that every
// heap byte is in exactly one block reachable from the roots (via
// Options.Walk) or on a free list, and that the free lists are well formed.
// It takes the writer lock (repairing a dead writer's transaction first, as
// any writer would) and changes nothing else. Errors wrap ErrCorrupt.
func (f *File) Check() error { return f.CheckContext(context.Background()) }

// CheckContext is Check, giving up waiting for the writer lock when ctx is
// done (see BeginContext).
func (f *File) CheckContext(ctx context.Context) error {
	tx, err := f.BeginContext(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return f.checkLocked()
}

func (f *File) checkLocked() error {
	m := f.mem
	fileSize, err := f.FileSize()
	if err != nil {
		return err
	}
	if _, err := validateHeader(m[:PageSize], uint64(fileSize)); err != nil {
		return err
	}
	if jb := atomicLoad(m, offJournalBytes); jb != 0 {
		return fmt.Errorf("%w: journal holds %d bytes outside a transaction", ErrCorrupt, jb)
	}
	used, err := f.reachableLocked()
	if err != nil {
		return err
	}
	bump := binary.LittleEndian.Uint64(m[offBump:])
	if err := sortAndCheckBlocks(used, bump, "reachable"); err != nil {
		return err
	}
	free, err := f.freeBlocksLocked()
	if err != nil {
		return err
	}
	all := append(used, free...)
	if err := sortAndCheckBlocks(all, bump, "reachable or free"); err != nil {
		return err
	}
	var total uint64
	for _, b := range all {
		total += b.size
	}
	if total != bump-HeapStart {
		return fmt.Errorf("%w: blocks cover %d bytes of a %d-byte heap (leaked space)", ErrCorrupt, total, bump-HeapStart)
	}
	return nil
}

// freeBlocksLocked walks every free list, validating entries and bounding
// the walk so that a cycle is reported, not followed forever.
func (f *File) freeBlocksLocked() ([]block, error) {
	var free []block
	limit := (f.Size() - HeapStart) / minBlock
	for c := 0; c < numClasses; c++ {
		head := binary.LittleEndian.Uint64(f.mem[freeHeadOff(c):])
		bit := binary.LittleEndian.Uint64(f.mem[offFreeMask+8*uint64(c/64):])>>(c%64)&1 == 1
		if bit != (head != 0) {
			return nil, fmt.Errorf("%w: free list %d: head %d but non-empty bit %v", ErrCorrupt, c, head, bit)
		}
		n := uint64(0)
		for off := binary.LittleEndian.Uint64(f.mem[freeHeadOff(c):]); off != 0; off = binary.LittleEndian.Uint64(f.mem[off:]) {
			if err := f.checkFreeBlock(off, c); err != nil {
				return nil, err
			}
			if n++; n > limit {
				return nil, fmt.Errorf("%w: free list %d has a cycle", ErrCorrupt, c)
			}
			free = append(free, block{off, classSizes[c]})
		}
	}
	return free, nil
}
