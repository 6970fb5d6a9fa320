package shm

import (
	"encoding/binary"
	"fmt"
	"os"
)

// repairIfWriterDead is called by a reader that found the counter odd for a
// while. If no live writer holds the lock, the writer died mid-transaction:
// the reader repairs the file as the next writer would. It never waits for
// a lock: a lock held by anyone means a live writer.
func (f *File) repairIfWriterDead() error {
	if !f.tryLockProcess() {
		return nil // a writer of this File is alive
	}
	defer f.unlockProcess()
	if f.closed {
		return ErrClosed
	}
	ok, err := f.tryLockFile()
	if err != nil || !ok {
		return err // a writer of another File is alive
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
// the free lists from the reachable blocks. Both locks are held. Repairing
// twice is harmless, so a repairer that dies leaves work for the next.
func (f *File) repairLocked() error {
	m := f.mem
	atomicStore(m, offSeq, atomicLoad(m, offSeq)|seqWriting)
	// The repairer is now the writer: a reader that waits on it names it,
	// and if it dies too, the marker makes the next writer repair again.
	atomicStore(m, offWriterPID, uint64(os.Getpid()))
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
