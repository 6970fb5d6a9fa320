package shm

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
)

// Tx is a write transaction: the only way to change a File. It holds the
// writer lock from Begin until Commit or Rollback, so keep it short; readers
// in every process retry while it changes reachable memory.
//
// Tx methods are not safe for concurrent use. The goroutine holding a Tx must
// not call ReadBegin on the same File (it would wait for itself).
//
// Errors are sticky: after a failed Alloc, Put64, PutBytes or Move, further
// changes are ignored, Err returns the first error, and Commit rolls back
// and returns it.
type Tx struct {
	f       *File
	err     error
	done    bool
	writing bool // the seqlock counter is odd
	retire  bool
	cursor  journalCursor
	allocs  []block // blocks allocated by this transaction (returned on rollback)
	frees   []block // blocks freed by this transaction (freed on commit)
}

// Begin starts a write transaction, waiting for the writer lock for as long
// as it takes. If the previous writer died in the middle of a transaction,
// Begin first rolls that transaction back and rebuilds the free lists
// (Options.Walk). It returns an error wrapping ErrRetired if the file was
// retired, and ErrClosed after Close. BeginContext is Begin with a bound.
func (f *File) Begin() (*Tx, error) { return f.BeginContext(context.Background()) }

// BeginContext is Begin, giving up when ctx is done: both the in-process
// lock and the cross-process lock are waited for under ctx (the latter
// with non-blocking attempts and a backoff from tens of microseconds to a
// few milliseconds), and an error from a wait that ctx ended wraps
// ctx.Err() and names the process holding the lock. A ctx already done
// fails at once, without taking a lock. On a File opened read-only it
// fails with ErrReadOnly.
func (f *File) BeginContext(ctx context.Context) (*Tx, error) {
	if f.opts.ReadOnly {
		return nil, fmt.Errorf("%w: %s: a process with read access only cannot write or check it", ErrReadOnly, f.path)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("shm: %s: begin: %w", f.path, err)
	}
	if err := f.lockProcess(ctx); err != nil {
		return nil, err
	}
	if f.closed {
		f.unlockProcess()
		return nil, ErrClosed
	}
	if err := f.lockFileContext(ctx); err != nil {
		f.unlockProcess()
		return nil, err
	}
	if err := f.beginLocked(); err != nil {
		f.unlockFile()
		f.unlockProcess()
		return nil, err
	}
	return &Tx{f: f}, nil
}

// beginLocked repairs a dead writer's transaction if needed and marks a new
// one in progress. Both locks are held.
func (f *File) beginLocked() error {
	if f.needsRepairLocked() {
		if err := f.repairLocked(); err != nil {
			return err
		}
	}
	if atomicLoad(f.mem, offSeq)&seqRetired != 0 {
		return fmt.Errorf("shm: %s: %w", f.path, ErrRetired)
	}
	atomicStore(f.mem, offWriterPID, uint64(os.Getpid()))
	return nil
}

// File returns the file the transaction changes.
func (tx *Tx) File() *File { return tx.f }

// Err returns the transaction's first error, if any.
func (tx *Tx) Err() error { return tx.err }

func (tx *Tx) fail(err error) {
	if tx.err == nil {
		tx.err = err
	}
}

// Alloc returns a new block of at least size bytes. Its contents are
// undefined; fill it through Fresh. If the transaction rolls back, the block
// is freed again.
func (tx *Tx) Alloc(size uint64) (uint64, error) {
	if tx.err != nil {
		return 0, tx.err
	}
	c, ok := classOf(size)
	if !ok {
		err := fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
		tx.fail(err)
		return 0, err
	}
	off, err := tx.f.allocLocked(c)
	if err != nil {
		tx.fail(err)
		return 0, err
	}
	tx.allocs = append(tx.allocs, block{off, classSizes[c]})
	return off, nil
}

// Free frees the block at off, allocated with the given size, when the
// transaction commits. The caller must already have unlinked it (with
// journaled writes) so that no reader reaches it after the commit.
func (tx *Tx) Free(off, size uint64) {
	if tx.err != nil {
		return
	}
	c, ok := classOf(size)
	if !ok || off < HeapStart || off%Align != 0 || off+classSizes[c] > tx.f.Size() {
		tx.fail(fmt.Errorf("%w: free of invalid block %d (%d bytes)", ErrCorrupt, off, size))
		return
	}
	tx.frees = append(tx.frees, block{off, classSizes[c]})
}

// Fresh returns the writable bytes [off, off+n) of a block this transaction
// allocated, for filling before the block becomes reachable. Writes through
// it are not journaled. It returns nil (and fails the transaction) for a
// range outside the file.
func (tx *Tx) Fresh(off, n uint64) []byte {
	if tx.err != nil {
		return nil
	}
	if off < HeapStart || off+n > tx.f.Size() || off+n < off {
		tx.fail(fmt.Errorf("%w: fresh range [%d, +%d) outside the heap", ErrCorrupt, off, n))
		return nil
	}
	return tx.f.mem[off : off+n : off+n]
}

// beginChange journals [off, off+n) and makes readers retry.
func (tx *Tx) beginChange(off, n uint64) bool {
	if tx.err != nil {
		return false
	}
	f := tx.f
	if !validTarget(off, n, f.Size()) {
		tx.fail(fmt.Errorf("%w: write to [%d, +%d) outside the roots and heap", ErrCorrupt, off, n))
		return false
	}
	if !tx.writing {
		tx.writing = true
		atomicStore(f.mem, offSeq, atomicLoad(f.mem, offSeq)|seqWriting)
	}
	for done := uint64(0); done < n; {
		part := min(n-done, maxEntryData)
		if err := f.appendUndoLocked(&tx.cursor, off+done, part); err != nil {
			tx.fail(err)
			return false
		}
		done += part
	}
	return true
}

// Put64 stores v at off (8-aligned, in the roots or the heap), journaled.
func (tx *Tx) Put64(off, v uint64) {
	if off%8 != 0 {
		tx.fail(fmt.Errorf("%w: unaligned word write at %d", ErrCorrupt, off))
		return
	}
	if tx.beginChange(off, 8) {
		atomicStore(tx.f.mem, off, v)
	}
}

// PutBytes copies b to off, journaled.
func (tx *Tx) PutBytes(off uint64, b []byte) {
	if tx.beginChange(off, uint64(len(b))) {
		copy(tx.f.mem[off:], b)
	}
}

// Region journals [off, off+n) once and returns it writable, for a change
// made of several writes inside one range (shifting slots and filling the
// gap, say). The slice is valid until the transaction ends; it is nil (and
// the transaction failed) for a range outside the roots and heap.
func (tx *Tx) Region(off, n uint64) []byte {
	if !tx.beginChange(off, n) {
		return nil
	}
	return tx.f.mem[off : off+n : off+n]
}

// Move copies n bytes from src to dst (the ranges may overlap), journaling
// the destination.
func (tx *Tx) Move(dst, src, n uint64) {
	if src+n > tx.f.Size() || src+n < src {
		tx.fail(fmt.Errorf("%w: move source [%d, +%d) outside the file", ErrCorrupt, src, n))
		return
	}
	if tx.beginChange(dst, n) {
		m := tx.f.mem
		copy(m[dst:dst+n], m[src:src+n])
	}
}

// Retire marks the file retired when the transaction commits: readers and
// writers of every process then get ErrRetired and should reopen the path.
func (tx *Tx) Retire() { tx.retire = true }

// Commit makes the transaction's changes final, frees what it freed, and
// releases the writer lock. If the transaction failed, Commit rolls it back
// and returns its error.
func (tx *Tx) Commit() error {
	if tx.done {
		return fmt.Errorf("shm: %w: transaction already finished", ErrClosed)
	}
	if tx.err != nil {
		err := tx.err
		if rerr := tx.Rollback(); rerr != nil {
			return fmt.Errorf("%w (rollback: %v)", err, rerr)
		}
		return err
	}
	f := tx.f
	m := f.mem
	atomicStore(m, offJournalBytes, 0) // the commit point
	tx.endWrite()
	for _, b := range tx.frees {
		c, _ := classOf(b.size)
		f.freeLocked(b.off, c)
	}
	binary.LittleEndian.PutUint64(m[offCommits:], binary.LittleEndian.Uint64(m[offCommits:])+1)
	tx.finish()
	return nil
}

// Rollback undoes the transaction's changes and releases the writer lock.
// Calling it after Commit or Rollback does nothing.
func (tx *Tx) Rollback() error {
	if tx.done {
		return nil
	}
	f := tx.f
	err := f.undoLocked()
	if err == nil {
		for _, b := range tx.allocs {
			c, _ := classOf(b.size)
			f.freeLocked(b.off, c)
		}
	} else {
		// Leave the in-progress marker set: the next writer repairs.
		tx.endWrite()
		tx.release()
		return fmt.Errorf("shm: rollback: %w", err)
	}
	tx.retire = false
	tx.endWrite()
	tx.finish()
	return nil
}

// endWrite ends the seqlock write section, if one was started.
func (tx *Tx) endWrite() {
	m := tx.f.mem
	s := atomicLoad(m, offSeq)
	if tx.writing {
		s = (s | seqWriting) + 1
	}
	if tx.retire {
		s = (s + seqStep) | seqRetired
	}
	tx.f.publishSeq(s)
	tx.writing = false
}

func (tx *Tx) finish() {
	atomicStore(tx.f.mem, offWriterPID, 0)
	tx.release()
}

func (tx *Tx) release() {
	tx.done = true
	tx.f.unlockFile()
	tx.f.unlockProcess()
}
