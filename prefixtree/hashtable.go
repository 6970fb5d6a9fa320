package prefixtree

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/shm"
)

// probe finds key in the hash table. It returns the offset of the slot
// holding it and its entry (0, 0 if absent), and the slot where it would be
// inserted (the first deleted slot on the probe path, else the empty slot
// that ended it; 0 if there is no table or no room).
func (b *Batch) probe(v *view, key []byte, h uint64) (slot, entry, insert uint64) {
	tab := v.u64(shm.RootOffset(rootTable))
	if tab == 0 {
		return 0, 0, 0
	}
	capacity := v.u64(tab)
	mask := capacity - 1
	for i, n := h&mask, uint64(0); n < capacity && !v.bad; i, n = (i+1)&mask, n+1 {
		so := tab + tableHeader + i*8
		s := v.u64(so)
		switch {
		case s == 0:
			if insert == 0 {
				insert = so
			}
			return 0, 0, insert
		case s == slotDeleted:
			if insert == 0 {
				insert = so
			}
		case tagMatches(s, h):
			if off := slotOff(s); bytes.Equal(v.entryKey(off), key) {
				return so, off, insert
			}
		}
	}
	return 0, 0, insert
}

// insertSlot puts a new entry for key (known to be absent) into the table,
// which ensureRoom made large enough; size is the entry's size, 0 for a
// tombstone. ins is the insertion slot a probe of this table found, or 0
// to probe again.
func (b *Batch) insertSlot(key []byte, h, entry, size, ins uint64) {
	if b.err != nil || entry == 0 {
		return
	}
	v := b.view()
	if ins == 0 {
		_, _, ins = b.probe(&v, key, h)
	}
	if ins == 0 || b.check(&v, "insert") != nil {
		b.fail(fmt.Errorf("prefixtree: %w: hash table has no free slot", ErrCorrupt))
		return
	}
	if v.u64(ins) == 0 {
		b.used++
		b.usedDirty = true
	}
	b.tx.Put64(ins, makeSlot(h, entry, size))
}

// Reserve makes room in the hash table for n more keys, so that a batch
// about to write n new keys does not rebuild the table in the middle (while
// readers wait). Call it first in a batch.
func (b *Batch) Reserve(n int) error {
	if b.err != nil {
		return b.err
	}
	_, err := b.ensureRoom(uint64(n))
	return err
}

// ensureRoom rebuilds the table, larger if needed, when adding extra used
// slots would pass the load limit, and reports whether it did.
func (b *Batch) ensureRoom(extra uint64) (bool, error) {
	v := b.view()
	tab := v.u64(shm.RootOffset(rootTable))
	var capacity uint64
	if tab != 0 {
		capacity = v.u64(tab)
	}
	if err := b.check(&v, "hash table"); err != nil {
		return false, err
	}
	if tab != 0 && (b.used+extra)*maxLoadDenom <= capacity*maxLoadNum {
		return false, nil
	}
	entries := uint64(int64(v.u64(shm.RootOffset(rootLive))+v.u64(shm.RootOffset(rootTombstones))) + b.live + b.tombs)
	newCap, err := b.tableCapFor(entries, extra)
	if err != nil {
		return false, b.fail(err)
	}
	return true, b.rebuildTable(newCap)
}

// maxReserve bounds the keys one Reserve may ask room for.
const maxReserve = 1 << 40

// tableCapFor returns the capacity of a table for entries entries (from the
// counters) and extra more: the smallest power of two that keeps the load
// at 2/3 or less. Counters that claim more entries than the file has room
// for come from a damaged file; they are an error, not a reason to double
// the capacity until it overflows.
func (b *Batch) tableCapFor(entries, extra uint64) (uint64, error) {
	if entries > b.t.f.Size()/entryHeader {
		return 0, fmt.Errorf("prefixtree: %w: counters claim %d entries in a %d-byte file", ErrCorrupt, entries, b.t.f.Size())
	}
	if extra > maxReserve {
		return 0, fmt.Errorf("%w: room for %d more keys", ErrTooLarge, extra)
	}
	newCap := uint64(minTableCap)
	for newCap*maxLoadNum < (entries+extra)*maxLoadDenom*3/2 {
		newCap *= 2
	}
	return newCap, nil
}

// rebuildTable moves every entry into a new table of the given capacity.
// The new table is filled before it becomes reachable; only the root swap
// is journaled.
func (b *Batch) rebuildTable(capacity uint64) error {
	nt, err := b.tx.Alloc(tableSize(capacity))
	if err != nil {
		return b.fail(err)
	}
	mem := b.tx.Fresh(nt, tableSize(capacity))
	if mem == nil {
		return b.check(nil, "rebuild")
	}
	clear(mem)
	binary.LittleEndian.PutUint64(mem, capacity)
	slots := mem[tableHeader:]
	mask := capacity - 1
	v := b.view()
	var used uint64
	old := v.u64(shm.RootOffset(rootTable))
	if old != 0 {
		oldCap := v.u64(old)
		for i := uint64(0); i < oldCap && !v.bad; i++ {
			s := v.u64(old + tableHeader + i*8)
			if s == 0 || s == slotDeleted {
				continue
			}
			if used == capacity {
				// Only a damaged table holds more entries than its
				// counters say; do not probe a full table forever.
				return b.fail(fmt.Errorf("prefixtree: %w: hash table holds more entries than its counters", ErrCorrupt))
			}
			h := xxhash.Sum64(v.entryKey(slotOff(s)))
			j := h & mask
			for binary.LittleEndian.Uint64(slots[j*8:]) != 0 {
				j = (j + 1) & mask
			}
			binary.LittleEndian.PutUint64(slots[j*8:], s)
			used++
		}
		if err := b.check(&v, "rebuild"); err != nil {
			return err
		}
		b.tx.Free(old, tableSize(oldCap))
	}
	binary.LittleEndian.PutUint64(mem[8:], used)
	b.tx.Put64(shm.RootOffset(rootTable), nt)
	b.used, b.usedDirty = used, false
	return b.check(nil, "rebuild")
}

// PurgeTombstones removes the tombstones of records with ids <= maxID and
// returns how many it removed. Call it when no record that old can arrive
// any more (for an Instance: ids at or below the applied update id).
func (b *Batch) PurgeTombstones(maxID uint64) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	v := b.view()
	tab := v.u64(shm.RootOffset(rootTable))
	if tab == 0 {
		return 0, nil
	}
	capacity := v.u64(tab)
	n := 0
	for i := uint64(0); i < capacity && !v.bad; i++ {
		so := tab + tableHeader + i*8
		s := v.u64(so)
		if s == 0 || s == slotDeleted {
			continue
		}
		off := slotOff(s)
		kl, vl := v.entryKeyLen(off), v.u32(off+4)
		if vl&tombFlag == 0 || v.u64(off+8) > maxID {
			continue
		}
		b.tx.Put64(so, slotDeleted)
		b.tx.Free(off, entrySize(kl, vl&^tombFlag))
		b.tombs--
		n++
	}
	if err := b.check(&v, "purge"); err != nil {
		return 0, err
	}
	// Deleted slots still count as used; rebuild when they dominate.
	entries := uint64(int64(v.u64(shm.RootOffset(rootLive))+v.u64(shm.RootOffset(rootTombstones))) + b.live + b.tombs)
	if n > 0 && b.used > 2*entries+minTableCap {
		newCap, err := b.tableCapFor(entries, 0)
		if err != nil {
			return 0, b.fail(err)
		}
		if err := b.rebuildTable(newCap); err != nil {
			return 0, err
		}
	}
	return n, nil
}
