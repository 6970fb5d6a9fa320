package shm

import (
	"encoding/binary"
	"fmt"
)

// repairIfWriterDead is called by a reader that found the counter odd for a
// while. If no live writer holds the lock, the writer died mid-transaction:
// the reader repairs the file as the next writer would.
func (f *File) repairIfWriterDead() error {
	if !f.wmu.TryLock() {
		return nil // a writer of this File is alive
	}
	defer f.wmu.Unlock()
	if f.closed {
		return ErrClosed
	}
	held, err := f.lockHeldElsewhere()
	if err != nil || held {
		return err
	}
	if err := f.lockFile(); err != nil {
		return err
	}
	defer f.unlockFile()
	if !f.needsRepairLocked() {
		return nil // the writer finished meanwhile
	}
	return f.repairLocked()
}

// needsRepairLocked reports whether the writer lock's previous holder left
// a transaction behind: its in-progress marker, or a counter still odd. The
// counter alone is odd if a repairer died between clearing the marker and
// ending its write section (or in a damaged file); without this, readers
// would wait for it forever. Both locks are held, so no live writer has the
// counter odd.
func (f *File) needsRepairLocked() bool {
	return atomicLoad(f.mem, offWriterPID) != 0 || atomicLoad(f.mem, offSeq)&seqWriting != 0
}

// repairLocked rolls back the transaction of a writer that died and rebuilds
// the free lists from the reachable blocks. Both locks are held.
func (f *File) repairLocked() error {
	m := f.mem
	atomicStore(m, offSeq, atomicLoad(m, offSeq)|seqWriting)
	if err := f.undoLocked(); err != nil {
		return fmt.Errorf("shm: repair %s: %w", f.path, err)
	}
	used, err := f.reachableLocked()
	if err != nil {
		return fmt.Errorf("shm: repair %s: %w", f.path, err)
	}
	if err := f.rebuildFreeListsLocked(used); err != nil {
		return fmt.Errorf("shm: repair %s: %w", f.path, err)
	}
	binary.LittleEndian.PutUint64(m[offRecoveries:], binary.LittleEndian.Uint64(m[offRecoveries:])+1)
	atomicStore(m, offWriterPID, 0)
	f.publishSeq(atomicLoad(m, offSeq) + 1)
	return nil
}

// reachableLocked lists the blocks reachable from the roots (through
// Options.Walk) and the journal chunks.
func (f *File) reachableLocked() ([]block, error) {
	_, chunks, err := f.readJournalLocked()
	if err != nil {
		return nil, err
	}
	if f.opts.Walk == nil {
		if f.hasUserRoots() {
			return nil, fmt.Errorf("shm: no Options.Walk to find the reachable blocks")
		}
		return chunks, nil
	}
	used := chunks
	err = f.opts.Walk(f, func(off, size uint64) error {
		bs := BlockSize(size)
		if bs == 0 {
			return fmt.Errorf("%w: reachable block %d has impossible size %d", ErrCorrupt, off, size)
		}
		used = append(used, block{off, bs})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return used, nil
}

func (f *File) hasUserRoots() bool {
	for i := 0; i < UserRoots; i++ {
		if f.Root(i) != 0 {
			return true
		}
	}
	return false
}
