package prefixtree

import "encoding/binary"

// Roots of the map in the shm file's user root words. Words metaRoot and up
// are handed to the map's user (Meta, Batch.SetMeta).
const (
	rootTable      = 0 // offset of the hash table
	rootTree       = 1 // offset of the B+tree root node, 0 when empty
	rootLive       = 2 // number of live keys
	rootTombstones = 3 // number of tombstone entries
	rootBytes      = 4 // sum of the lengths of live keys and values
	rootFormat     = 5 // treeFormat once the map holds anything
	metaRoot       = 16
	// MetaWords is the number of user metadata words (Meta, SetMeta).
	MetaWords = 16
)

// treeFormat identifies this layout of the map ("PT" and version 3); a file
// whose map was written in another layout is rejected by Open, except
// version 2 (the same layout without expiring entries), which Open marks
// as version 3 when it may write.
const (
	treeFormat   = 0x5054<<16 | 3
	treeFormatV2 = 0x5054<<16 | 2
)

// Entry: one key with its value (or tombstone) and the id of the record that
// wrote it.
//
//	u32 key length, bit 31 = expires | u32 stored length, bit 31 = tombstone |
//	u64 record id | key | [u64 expiry, if it expires] value
//
// The stored length counts the 8 bytes of the expiry (unix time in
// nanoseconds, > 0) of an expiring entry, so the block size stays
// derivable from the header: 16 + key + stored length. A tombstone never
// expires and keeps the stored length of the entry it replaced in place.
// Keys are at most MaxKeySize bytes, so bit 31 of the key length is free.
const (
	entryHeader = 16
	tombFlag    = 1 << 31
	expFlag     = 1 << 31
	expirySize  = 8
)

func entrySize(keyLen, valueLen uint64) uint64 { return entryHeader + keyLen + valueLen }

// storedLen is the stored length of a value of n bytes with expiry exp.
func storedLen(n int, exp int64) uint64 {
	if exp != 0 {
		return uint64(n) + expirySize
	}
	return uint64(n)
}

// Hash table: u64 capacity (a power of two) | u64 used slots | capacity
// slots. A slot is 0 (empty), slotDeleted (a removed entry; probing goes on),
// or an entry reference:
//
//	bits  0-39  entry offset / 8 (entries lie below 8 TiB)
//	bits 40-55  the entry's size in bytes if it is live and smaller than
//	            64 KiB, else 0
//	bits 56-63  tag: the top 8 bits of the key's hash
//
// The size lets a lookup copy the value as soon as it has read the slot,
// without waiting for the entry's header. Invariants: an entry is found by
// probing from hash&(capacity-1) before any empty slot; used slots
// (entries and deleted) stay at most 3/4 of capacity; a slot's size field
// matches its entry.
const (
	tableHeader   = 16
	slotDeleted   = 1
	slotOffBits   = 40
	slotSizeShift = 40
	slotSizeMask  = 1<<16 - 1
	slotTagShift  = 56
	// MaxFileSize is the largest state file a map can address.
	MaxFileSize  = 8 << slotOffBits
	minTableCap  = 16
	maxLoadNum   = 3
	maxLoadDenom = 4
)

// makeSlot returns the slot referring to entry off of the given size (0
// for a tombstone) under the tag of hash h.
func makeSlot(h, off, size uint64) uint64 {
	if size > slotSizeMask {
		size = 0
	}
	return h>>slotTagShift<<slotTagShift | size<<slotSizeShift | off/8
}

func slotOff(s uint64) uint64  { return (s & (1<<slotOffBits - 1)) * 8 }
func slotSize(s uint64) uint64 { return s >> slotSizeShift & slotSizeMask }

// tagMatches reports whether slot s may refer to a key with hash h.
func tagMatches(s, h uint64) bool { return s>>slotTagShift == h>>slotTagShift }

func tableSize(capacity uint64) uint64 { return tableHeader + 8*capacity }

// B+tree nodes are nodeSize-byte blocks:
//
//	u16 kind | u16 count | u32 unused | u64 unused | body
//
// Leaf body: count slots of u64 key prefix | u64 entry offset, sorted by
// key. Internal body: u64 child0 | count entries of u64 separator prefix |
// u64 separator block | u64 child. Every key under entry i's child is >= its
// separator and < the next entry's separator; keys under child0 are below
// entry 0's separator. Separator blocks: u32 length | u32 unused | bytes.
// Leaves hold only live keys; every node except the root is non-empty; an
// internal root has at least one entry.
const (
	nodeSize       = 1024
	nodeHeader     = 16
	kindLeaf       = 1
	kindInternal   = 2
	leafSlot       = 16
	leafCap        = (nodeSize - nodeHeader) / leafSlot // 63
	internalEntry  = 24
	internalBody   = nodeHeader + 8
	internalCap    = (nodeSize - internalBody) / internalEntry // 41
	sepHeader      = 8
	maxDepth       = 32
	maxIterHops    = 1 << 20
	cursorBatchMax = 64
)

func sepSize(keyLen uint64) uint64 { return sepHeader + keyLen }

// keyPrefix is the first 8 bytes of key, big-endian, zero padded: ordering
// prefixes orders keys, except that equal prefixes need a full comparison.
func keyPrefix(key []byte) uint64 {
	if len(key) >= 8 {
		return binary.BigEndian.Uint64(key)
	}
	var b [8]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:])
}
