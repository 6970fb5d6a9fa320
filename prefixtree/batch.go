package prefixtree

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/shm"
)

// Batch is a group of writes that readers in every process see all at once
// or not at all, and that a crash rolls back whole. It holds the state
// file's writer lock from Begin until Commit or Rollback, and readers retry
// while it runs, so keep batches short (thousands of keys, not millions).
//
// A Batch is not safe for concurrent use, and the goroutine holding it must
// not read the Tree (it would wait for itself). After any error the batch
// is failed: Commit rolls it back and returns the first error.
type Batch struct {
	t  *Tree
	tx *shm.Tx

	// Counter deltas, written to the roots at Commit.
	live, tombs, data int64
	// used is the hash table's used-slot count, written at Commit when
	// usedDirty.
	used      uint64
	usedDirty bool

	err error
}

// Begin starts a batch, waiting for the writer lock for as long as it
// takes. BeginContext is Begin with a bound.
func (t *Tree) Begin() (*Batch, error) { return t.BeginContext(context.Background()) }

// BeginContext starts a batch, giving up waiting for the writer lock when
// ctx is done, with an error that wraps ctx.Err() and names the process
// holding the lock (see shm.File.BeginContext).
func (t *Tree) BeginContext(ctx context.Context) (*Batch, error) {
	tx, err := t.f.BeginContext(ctx)
	if err != nil {
		return nil, err
	}
	b := &Batch{t: t, tx: tx}
	v := b.view()
	if tab := v.u64(shm.RootOffset(rootTable)); tab != 0 {
		b.used = v.u64(tab + 8)
	}
	if v.bad {
		tx.Rollback()
		return nil, fmt.Errorf("prefixtree: %w: hash table root out of bounds", ErrCorrupt)
	}
	return b, nil
}

func (b *Batch) view() view { return b.t.view() }

func (b *Batch) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// check converts a bad view or a failed transaction into the batch's error.
func (b *Batch) check(v *view, what string) error {
	if b.err != nil {
		return b.err
	}
	if err := b.tx.Err(); err != nil {
		return b.fail(err)
	}
	if v != nil && v.bad {
		return b.fail(fmt.Errorf("prefixtree: %w: %s: offset out of bounds", ErrCorrupt, what))
	}
	return nil
}

func validateKV(key []byte, valueLen int) error {
	switch {
	case len(key) == 0:
		return ErrEmptyKey
	case len(key) > MaxKeySize:
		return fmt.Errorf("%w: key of %d bytes (max %d)", ErrTooLarge, len(key), MaxKeySize)
	case valueLen > MaxValueSize:
		return fmt.Errorf("%w: value of %d bytes (max %d)", ErrTooLarge, valueLen, MaxValueSize)
	}
	return nil
}

// Put sets key to value as written by record id. If the key's stored entry
// (value or tombstone) comes from a newer record, Put changes nothing and
// returns false. Invalid keys and values fail the call but not the batch.
func (b *Batch) Put(key, value []byte, id uint64) (bool, error) {
	return b.PutExpiring(key, value, id, 0)
}

// PutExpiring is Put of an entry that expires at exp, in nanoseconds since
// the Unix epoch (0: never; a negative exp fails the call). From that time
// on, by the clock of the reading machine, reads (AppendGet, GetEntry,
// cursors) find no entry for the key, while the entry stays in the map and
// in its counters (Len, DataBytes) until it is overwritten or deleted.
func (b *Batch) PutExpiring(key, value []byte, id uint64, exp int64) (bool, error) {
	if b.err != nil {
		return false, b.err
	}
	if err := validateKV(key, len(value)); err != nil {
		return false, err
	}
	if exp < 0 {
		return false, fmt.Errorf("prefixtree: negative expiry %d", exp)
	}
	if exp != 0 && len(value) > MaxValueSize-expirySize {
		return false, fmt.Errorf("%w: expiring value of %d bytes (max %d)", ErrTooLarge, len(value), MaxValueSize-expirySize)
	}
	h := xxhash.Sum64(key)
	v := b.view()
	slot, off, ins := b.probe(&v, key, h)
	if err := b.check(&v, "put"); err != nil {
		return false, err
	}
	sl := storedLen(len(value), exp)
	if off != 0 {
		if v.u64(off+8) > id {
			return false, nil
		}
		kl, vl := v.entryKeyLen(off), v.u32(off+4)
		if vl&tombFlag == 0 {
			old, _ := v.entryValue(off)
			return true, b.replaceValue(key, value, exp, id, h, slot, off, vl, uint64(len(old)))
		}
		ne := b.newEntry(key, value, exp, id, false)
		b.tx.Put64(slot, makeSlot(h, ne, entrySize(kl, sl)))
		b.tx.Free(off, entrySize(kl, vl&^tombFlag))
		b.tombs--
		b.live++
		b.data += int64(len(key) + len(value))
		b.treeInsert(key, ne)
		return true, b.check(nil, "put")
	}
	if rebuilt, err := b.ensureRoom(1); err != nil {
		return false, err
	} else if rebuilt {
		ins = 0
	}
	ne := b.newEntry(key, value, exp, id, false)
	b.insertSlot(key, h, ne, entrySize(uint64(len(key)), sl), ins)
	b.live++
	b.data += int64(len(key) + len(value))
	b.treeInsert(key, ne)
	return true, b.check(nil, "put")
}

// replaceValue overwrites the live entry at off (stored length oldStored,
// value length oldLen), in place when the new entry has the same block
// size, else with a new block referenced from the hash slot and the leaf.
func (b *Batch) replaceValue(key, value []byte, exp int64, id, h, slot, off, oldStored, oldLen uint64) error {
	kl := uint64(len(key))
	oldSize, newSize := entrySize(kl, oldStored), entrySize(kl, storedLen(len(value), exp))
	b.data += int64(len(value)) - int64(oldLen)
	if shm.BlockSize(oldSize) == shm.BlockSize(newSize) {
		var hdr [entryHeader]byte
		fillEntryHeader(hdr[:], key, len(value), exp, id, false)
		b.tx.PutBytes(off, hdr[:])
		vstart := off + entryHeader + kl
		if exp != 0 {
			var e [expirySize]byte
			binary.LittleEndian.PutUint64(e[:], uint64(exp))
			b.tx.PutBytes(vstart, e[:])
			vstart += expirySize
		}
		b.tx.PutBytes(vstart, value)
		if oldSize != newSize {
			b.tx.Put64(slot, makeSlot(h, off, newSize))
		}
		return b.check(nil, "put")
	}
	ne := b.newEntry(key, value, exp, id, false)
	b.tx.Put64(slot, makeSlot(h, ne, newSize))
	leaf, pos := b.findLeafSlot(key, off)
	if err := b.check(nil, "put"); err != nil {
		return err
	}
	b.tx.Put64(leafSlotOff(leaf, pos)+8, ne)
	b.tx.Free(off, oldSize)
	return b.check(nil, "put")
}

// Delete removes key as of record id, leaving a tombstone with the id so
// that older records cannot bring the key back. If the stored entry comes
// from a newer record, Delete changes nothing and returns false.
func (b *Batch) Delete(key []byte, id uint64) (bool, error) {
	if b.err != nil {
		return false, b.err
	}
	if err := validateKV(key, 0); err != nil {
		return false, err
	}
	h := xxhash.Sum64(key)
	v := b.view()
	slot, off, ins := b.probe(&v, key, h)
	if err := b.check(&v, "delete"); err != nil {
		return false, err
	}
	if off != 0 {
		if v.u64(off+8) > id {
			return false, nil
		}
		kl, vl := v.entryKeyLen(off), v.u32(off+4)
		if vl&tombFlag != 0 {
			b.tx.Put64(off+8, id)
			return true, b.check(nil, "delete")
		}
		old, _ := v.entryValue(off)
		if shm.BlockSize(entrySize(kl, vl)) > shm.BlockSize(entrySize(kl, 0)) {
			// Free the value's space now: a smaller tombstone replaces it.
			ne := b.newEntry(key, nil, 0, id, true)
			b.tx.Put64(slot, makeSlot(h, ne, 0))
			b.tx.Free(off, entrySize(kl, vl))
		} else {
			b.tx.Put64(off, kl|(vl|tombFlag)<<32)
			b.tx.Put64(off+8, id)
			b.tx.Put64(slot, makeSlot(h, off, 0))
		}
		b.live--
		b.tombs++
		b.data -= int64(kl + uint64(len(old)))
		b.treeRemove(key, off)
		return true, b.check(nil, "delete")
	}
	if rebuilt, err := b.ensureRoom(1); err != nil {
		return false, err
	} else if rebuilt {
		ins = 0
	}
	ne := b.newEntry(key, nil, 0, id, true)
	b.insertSlot(key, h, ne, 0, ins)
	b.tombs++
	return true, b.check(nil, "delete")
}

// allocFresh allocates a block of size bytes and returns it with its
// writable memory, or 0 and nil after failing the batch.
func (b *Batch) allocFresh(size uint64) (uint64, []byte) {
	off, err := b.tx.Alloc(size)
	if err != nil {
		b.fail(err)
		return 0, nil
	}
	mem := b.tx.Fresh(off, size)
	if mem == nil {
		return 0, nil
	}
	return off, mem
}

// newEntry allocates and fills an entry block.
func (b *Batch) newEntry(key, value []byte, exp int64, id uint64, tomb bool) uint64 {
	off, e := b.allocFresh(entrySize(uint64(len(key)), storedLen(len(value), exp)))
	if e == nil {
		return 0
	}
	fillEntryHeader(e, key, len(value), exp, id, tomb)
	copy(e[entryHeader:], key)
	vstart := entryHeader + len(key)
	if exp != 0 {
		binary.LittleEndian.PutUint64(e[vstart:], uint64(exp))
		vstart += expirySize
	}
	copy(e[vstart:], value)
	return off
}

// fillEntryHeader writes the header of an entry into e.
func fillEntryHeader(e, key []byte, valueLen int, exp int64, id uint64, tomb bool) {
	kw, vl := uint32(len(key)), uint32(storedLen(valueLen, exp))
	if exp != 0 {
		kw |= expFlag
	}
	if tomb {
		vl |= tombFlag
	}
	binary.LittleEndian.PutUint32(e, kw)
	binary.LittleEndian.PutUint32(e[4:], vl)
	binary.LittleEndian.PutUint64(e[8:], id)
}

// SetMeta sets user metadata word i (0 <= i < MetaWords).
func (b *Batch) SetMeta(i int, val uint64) error {
	if b.err != nil {
		return b.err
	}
	if i < 0 || i >= MetaWords {
		return fmt.Errorf("prefixtree: meta word %d out of range", i)
	}
	b.tx.Put64(shm.RootOffset(metaRoot+i), val)
	return b.check(nil, "set meta")
}

// Commit writes the batch's counters, makes the batch visible to readers
// and releases the writer lock. On error the batch is rolled back.
func (b *Batch) Commit() error {
	if b.err != nil {
		b.tx.Rollback()
		return b.err
	}
	v := b.view()
	b.addCounter(&v, rootLive, b.live)
	b.addCounter(&v, rootTombstones, b.tombs)
	b.addCounter(&v, rootBytes, b.data)
	if b.usedDirty {
		if tab := v.u64(shm.RootOffset(rootTable)); tab != 0 {
			b.tx.Put64(tab+8, b.used)
		}
	}
	if err := b.check(&v, "commit"); err != nil {
		b.tx.Rollback()
		return err
	}
	return b.tx.Commit()
}

func (b *Batch) addCounter(v *view, root int, delta int64) {
	if delta != 0 {
		b.tx.Put64(shm.RootOffset(root), uint64(int64(v.u64(shm.RootOffset(root)))+delta))
	}
}

// Rollback discards the batch and releases the writer lock.
func (b *Batch) Rollback() error { return b.tx.Rollback() }

// Put is a one-write batch: see Batch.Put.
func (t *Tree) Put(key, value []byte, id uint64) (bool, error) {
	return t.single(func(b *Batch) (bool, error) { return b.Put(key, value, id) })
}

// Delete is a one-write batch: see Batch.Delete.
func (t *Tree) Delete(key []byte, id uint64) (bool, error) {
	return t.single(func(b *Batch) (bool, error) { return b.Delete(key, id) })
}

func (t *Tree) single(fn func(b *Batch) (bool, error)) (bool, error) {
	b, err := t.Begin()
	if err != nil {
		return false, err
	}
	applied, err := fn(b)
	if err != nil {
		b.Rollback()
		return false, err
	}
	return applied, b.Commit()
}
