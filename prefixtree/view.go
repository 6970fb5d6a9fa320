package prefixtree

import (
	"bytes"
	"encoding/binary"
)

// view reads the mapping with every access bounds-checked against the size
// the file had when the view was made. A failed check sets bad and returns
// zero values, so read paths can run to the end on garbage (written by a
// concurrent writer) and decide afterwards: if the seqlock says the read was
// valid and bad is set, the structure is corrupt.
type view struct {
	m    []byte
	size uint64
	bad  bool
}

func (v *view) ok(off, n uint64) bool {
	end := off + n
	if end > v.size || end < off || v.bad {
		v.bad = true
		return false
	}
	return true
}

func (v *view) u64(off uint64) uint64 {
	if !v.ok(off, 8) {
		return 0
	}
	return binary.LittleEndian.Uint64(v.m[off:])
}

func (v *view) u32(off uint64) uint64 {
	if !v.ok(off, 4) {
		return 0
	}
	return uint64(binary.LittleEndian.Uint32(v.m[off:]))
}

func (v *view) u16(off uint64) uint64 {
	if !v.ok(off, 2) {
		return 0
	}
	return uint64(binary.LittleEndian.Uint16(v.m[off:]))
}

func (v *view) bytes(off, n uint64) []byte {
	if !v.ok(off, n) {
		return nil
	}
	return v.m[off : off+n : off+n]
}

// entryKeyLen returns the key length of the entry at off.
func (v *view) entryKeyLen(off uint64) uint64 { return v.u32(off) &^ expFlag }

// entryKey returns the key of the entry at off.
func (v *view) entryKey(off uint64) []byte { return v.bytes(off+entryHeader, v.entryKeyLen(off)) }

// entryValue returns the value of the entry at off (without its expiry)
// and whether it is a tombstone.
func (v *view) entryValue(off uint64) ([]byte, bool) {
	val, _, tomb := v.entryValueExp(off)
	return val, tomb
}

// entryValueExp returns the value of the entry at off, its expiry (0 for
// none) and whether it is a tombstone.
func (v *view) entryValueExp(off uint64) (val []byte, exp int64, tomb bool) {
	kw, vl := v.u32(off), v.u32(off+4)
	start, n := off+entryHeader+kw&^expFlag, vl&^tombFlag
	if kw&expFlag != 0 {
		if n < expirySize {
			v.bad = true
			return nil, 0, false
		}
		exp = int64(v.u64(start))
		start, n = start+expirySize, n-expirySize
	}
	return v.bytes(start, n), exp, vl&tombFlag != 0
}

func (v *view) entryBlockSize(off uint64) uint64 {
	return entrySize(v.entryKeyLen(off), v.u32(off+4)&^tombFlag)
}

func (v *view) sepKey(sep uint64) []byte { return v.bytes(sep+sepHeader, v.u32(sep)) }

// node accessors; a node's kind and count are validated by nodeCount.
func (v *view) nodeKind(n uint64) uint64 { return v.u16(n) }

func (v *view) nodeCount(n uint64) uint64 {
	c := v.u16(n + 2)
	limit := uint64(leafCap)
	if v.nodeKind(n) == kindInternal {
		limit = internalCap
	} else if v.nodeKind(n) != kindLeaf {
		v.bad = true
		return 0
	}
	if c > limit {
		v.bad = true
		return 0
	}
	return c
}

func leafSlotOff(n, i uint64) uint64 { return n + nodeHeader + i*leafSlot }
func internalEntryOff(n, i uint64) uint64 {
	return n + internalBody + i*internalEntry
}

// internalChild returns child i of an internal node, where i = -1 means
// child0.
func (v *view) internalChild(n uint64, i int) uint64 {
	if i < 0 {
		return v.u64(n + nodeHeader)
	}
	return v.u64(internalEntryOff(n, uint64(i)) + 16)
}

// compareSep compares key (with prefix kp) to the separator of entry i.
func (v *view) compareSep(kp uint64, key []byte, n, i uint64) int {
	e := internalEntryOff(n, i)
	if p := v.u64(e); kp != p {
		if kp < p {
			return -1
		}
		return 1
	}
	return bytes.Compare(key, v.sepKey(v.u64(e+8)))
}

// compareSlot compares key (with prefix kp) to the key of leaf slot i.
func (v *view) compareSlot(kp uint64, key []byte, n, i uint64) int {
	s := leafSlotOff(n, i)
	if p := v.u64(s); kp != p {
		if kp < p {
			return -1
		}
		return 1
	}
	return bytes.Compare(key, v.entryKey(v.u64(s+8)))
}

// pathElem is one step of a descent: the internal node and which child was
// taken (-1 for child0).
type pathElem struct {
	node  uint64
	child int
}

// descend walks from root to the leaf whose range holds key. It records the
// path if path is non-nil and returns the leaf, the depth, and the
// separator block bounding the leaf's range from above (0 if none).
func (v *view) descend(root uint64, kp uint64, key []byte, path *[maxDepth]pathElem) (leaf uint64, depth int, upper uint64) {
	n := root
	for depth = 0; depth < maxDepth && !v.bad; depth++ {
		switch v.nodeKind(n) {
		case kindLeaf:
			return n, depth, upper
		case kindInternal:
		default:
			v.bad = true
			return 0, 0, 0
		}
		cnt := v.nodeCount(n)
		// Largest i with sep_i <= key, or -1.
		lo, hi := 0, int(cnt)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if v.compareSep(kp, key, n, uint64(mid)) >= 0 {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		child := lo - 1
		if path != nil {
			path[depth] = pathElem{n, child}
		}
		if uint64(child+1) < cnt {
			upper = v.u64(internalEntryOff(n, uint64(child+1)) + 8)
		}
		n = v.internalChild(n, child)
	}
	v.bad = true
	return 0, 0, 0
}

// lowerBound returns the first slot of leaf n whose key is >= key.
func (v *view) lowerBound(n uint64, kp uint64, key []byte) uint64 {
	lo, hi := uint64(0), v.nodeCount(n)
	for lo < hi && !v.bad {
		mid := (lo + hi) / 2
		if v.compareSlot(kp, key, n, mid) > 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
