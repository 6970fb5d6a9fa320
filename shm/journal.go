package shm

import (
	"encoding/binary"
	"fmt"
)

// The undo journal records the old contents of every range a transaction
// changes in reachable memory, before it changes it. It lives in a chain of
// heap blocks (journal chunks) that persists across transactions:
//
//	chunk:  u64 next chunk (0 ends the chain) | u64 capacity | entries...
//	entry:  u64 target offset | u64 length n | n old bytes, padded to 8
//
// An entry whose target offset is 0 (never a valid target) marks the unused
// end of a chunk; the next entry starts in the next chunk. The header field
// journalBytes counts the journal's bytes, including skipped chunk ends, and
// is stored (atomically) only after an entry is complete, so a writer killed
// at any instant leaves a journal whose counted entries are all whole. Rolling
// back copies the old bytes back in reverse order; doing it twice is
// harmless.

const (
	journalChunkSize = 256 << 10
	chunkHeader      = 16
	entryHeader      = 16
	maxEntryData     = journalChunkSize - chunkHeader - entryHeader
)

// journalCursor is a writer's position in the journal chain.
type journalCursor struct {
	chunk uint64 // current chunk, 0 before the first entry
	at    uint64 // offset of the next entry inside chunk
	total uint64 // journal bytes so far (mirrors the header field)
}

// appendUndoLocked records the current contents of [off, off+n) in the
// journal. n must be at most maxEntryData.
func (f *File) appendUndoLocked(c *journalCursor, off, n uint64) error {
	need := entryHeader + roundUp(n, 8)
	m := f.mem
	if c.chunk == 0 {
		head := binary.LittleEndian.Uint64(m[offJournalHead:])
		if head == 0 {
			var err error
			if head, err = f.newChunkLocked(); err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(m[offJournalHead:], head)
		} else if err := f.checkChunkLocked(head); err != nil {
			return err
		}
		c.chunk, c.at = head, head+chunkHeader
	}
	if end := c.chunk + chunkHeader + binary.LittleEndian.Uint64(m[c.chunk+8:]); c.at+need > end {
		if c.at+entryHeader <= end {
			binary.LittleEndian.PutUint64(m[c.at:], 0)
		}
		next := binary.LittleEndian.Uint64(m[c.chunk:])
		if next == 0 {
			var err error
			if next, err = f.newChunkLocked(); err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(m[c.chunk:], next)
		} else if err := f.checkChunkLocked(next); err != nil {
			return err
		}
		c.total += end - c.at
		c.chunk, c.at = next, next+chunkHeader
	}
	binary.LittleEndian.PutUint64(m[c.at:], off)
	binary.LittleEndian.PutUint64(m[c.at+8:], n)
	copy(m[c.at+entryHeader:c.at+entryHeader+n], m[off:off+n])
	c.at += need
	c.total += need
	atomicStore(m, offJournalBytes, c.total)
	return nil
}

// checkChunkLocked validates the offset of an existing journal chunk, read
// from the file (the chain head or a chunk's next link): a whole chunk
// inside the heap with the journal's capacity. The journal is written
// through these offsets without other bounds checks, so a damaged file
// must be rejected here rather than make the writer fault or overwrite the
// header.
func (f *File) checkChunkLocked(chunk uint64) error {
	bump := binary.LittleEndian.Uint64(f.mem[offBump:])
	if chunk < HeapStart || chunk%Align != 0 || chunk+journalChunkSize > bump || chunk+journalChunkSize < chunk {
		return fmt.Errorf("%w: journal chunk %d outside the heap [%d, %d)", ErrCorrupt, chunk, HeapStart, bump)
	}
	if capacity := binary.LittleEndian.Uint64(f.mem[chunk+8:]); capacity != journalChunkSize-chunkHeader {
		return fmt.Errorf("%w: journal chunk %d has capacity %d", ErrCorrupt, chunk, capacity)
	}
	return nil
}

func (f *File) newChunkLocked() (uint64, error) {
	c, _ := classOf(journalChunkSize)
	off, err := f.allocLocked(c)
	if err != nil {
		return 0, err
	}
	binary.LittleEndian.PutUint64(f.mem[off:], 0)
	binary.LittleEndian.PutUint64(f.mem[off+8:], journalChunkSize-chunkHeader)
	return off, nil
}

// undoEntry is one parsed journal entry.
type undoEntry struct{ target, n, data uint64 }

// readJournalLocked parses the journal's counted entries, validating every
// offset, and returns them in the order they were written, with the journal
// chunks (for the allocator's reachability walk).
func (f *File) readJournalLocked() (entries []undoEntry, chunks []block, err error) {
	m := f.mem
	size := f.Size()
	total := atomicLoad(m, offJournalBytes)
	var seen uint64
	chunk := binary.LittleEndian.Uint64(m[offJournalHead:])
	for n := 0; chunk != 0; n++ {
		if n > int(size/journalChunkSize) {
			return nil, nil, fmt.Errorf("%w: journal chain longer than the file (a cycle)", ErrCorrupt)
		}
		if err := f.checkChunkLocked(chunk); err != nil {
			return nil, nil, err
		}
		chunks = append(chunks, block{chunk, BlockSize(journalChunkSize)})
		end := chunk + journalChunkSize
		at := chunk + chunkHeader
		for seen < total {
			if at+entryHeader > end || binary.LittleEndian.Uint64(m[at:]) == 0 {
				seen += end - at
				break
			}
			target := binary.LittleEndian.Uint64(m[at:])
			n := binary.LittleEndian.Uint64(m[at+8:])
			need := entryHeader + roundUp(n, 8)
			if n > maxEntryData || at+need > end || !validTarget(target, n, size) || seen+need > total {
				return nil, nil, fmt.Errorf("%w: journal entry at %d (target %d, %d bytes) invalid", ErrCorrupt, at, target, n)
			}
			entries = append(entries, undoEntry{target, n, at + entryHeader})
			at += need
			seen += need
		}
		chunk = binary.LittleEndian.Uint64(m[chunk:])
	}
	if seen < total {
		return nil, nil, fmt.Errorf("%w: journal holds %d bytes, chain ends after %d", ErrCorrupt, total, seen)
	}
	return entries, chunks, nil
}

// undoLocked applies the journal in reverse order and empties it.
func (f *File) undoLocked() error {
	entries, _, err := f.readJournalLocked()
	if err != nil {
		return err
	}
	m := f.mem
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		copy(m[e.target:e.target+e.n], m[e.data:e.data+e.n])
	}
	atomicStore(m, offJournalBytes, 0)
	return nil
}

// validTarget reports whether [off, off+n) may be changed by a transaction:
// the user roots or the heap, inside the accessible size.
func validTarget(off, n, size uint64) bool {
	end := off + n
	if end < off || end > size {
		return false
	}
	return off >= HeapStart || (off >= offRoots && end <= offRoots+8*UserRoots)
}
