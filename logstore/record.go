package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
)

// Record encoding, format versions 1 and 2. All integers are little-endian
// and fixed width, so the encoded size of a record is known exactly in
// advance:
//
//	"WCR" version                   magic and version byte (1 or 2)
//	u32 item count
//	per item:
//	    u8  flags                   bit 0 = delete, bit 1 = expires (version 2
//	                                only, never with bit 0); the other bits are 0
//	    u32 key length              > 0
//	    u32 value length            0 for a delete
//	    u64 expiry                  only with bit 1: unix time in nanoseconds,
//	                                1 to 1<<63-1
//	    key bytes
//	    value bytes
//	u64 xxhash64 of every preceding byte
//
// A record is written in version 2 only when one of its items expires, so
// records without expiring items are byte for byte those of version 1, and
// both versions decode. The item count matches the items exactly and no
// bytes follow the checksum.
const (
	// RecordOverhead is the number of bytes a record adds around its items:
	// magic and version (4), item count (4) and checksum (8).
	RecordOverhead = 16

	recordMagic    = "WCR"
	recordVersion  = 1
	recordVersion2 = 2 // a record with an expiring item
	itemHeaderSize = 9 // flags, key length, value length
	flagDelete     = 1 << 0
	flagExpires    = 1 << 1
	// ExpirySize is the number of bytes an expiring item adds to a record.
	ExpirySize = 8
	maxLen32   = math.MaxUint32
)

// Errors of the record encoders. They are returned wrapped with context;
// test with errors.Is.
var (
	// ErrEmptyKey is returned by AppendRecord and AppendPythonRecord when an
	// item has an empty key. Keys are non-empty byte strings.
	ErrEmptyKey = errors.New("logstore: empty key")

	// ErrNotRepresentable is returned by AppendPythonRecord for an item the
	// Python framing cannot express: a set with an empty value (Python
	// whycache reads an empty value as a delete) or an expiring item.
	ErrNotRepresentable = errors.New("logstore: not representable in the Python framing")

	// ErrBadExpiry is returned by AppendRecord for an item whose Expires
	// is negative.
	ErrBadExpiry = errors.New("logstore: negative expiry")
)

// Item is one change in a record: set Key to Value, or delete Key.
type Item struct {
	Key   []byte
	Value []byte // may be empty: an empty value is a value, not a delete
	// Delete marks the item as a delete of Key; Value and Expires are then
	// ignored by the encoders and zero in decoded items.
	Delete bool
	// Expires is the time the item expires at, in nanoseconds since the
	// Unix epoch; 0 means never. Only the Go format (version 2) carries it.
	Expires int64
}

// expires reports whether the encoders write an expiry for it.
func (it *Item) expires() bool { return !it.Delete && it.Expires != 0 }

// ItemSize is the exact number of bytes an item with these lengths adds to a
// record in the Go format: 9 + keyLen + valueLen, where valueLen is ignored
// for a delete (deletes encode no value). A record of items encodes to
// RecordOverhead plus the sum of their ItemSizes.
func ItemSize(keyLen, valueLen int, del bool) int {
	if del {
		valueLen = 0
	}
	return itemHeaderSize + keyLen + valueLen
}

// EncodedSize is the exact number of bytes it adds to a record in the Go
// format: its ItemSize, plus ExpirySize when it expires.
func (it *Item) EncodedSize() int {
	n := ItemSize(len(it.Key), len(it.Value), it.Delete)
	if it.expires() {
		n += ExpirySize
	}
	return n
}

// AppendRecord appends the Go-format encoding of items to dst and returns the
// extended slice. A record of zero items is valid: AppendRecord encodes it
// and DecodeRecord accepts it (it has no effect when applied). The Value of a
// delete item is ignored. The record is written in version 2 when an item
// expires, else in version 1.
//
// It returns dst unchanged and an error wrapping ErrEmptyKey if a key is
// empty, wrapping ErrBadExpiry if an item's Expires is negative, or wrapping
// ErrTooLarge if there are 1<<32 or more items or a key or value is 4 GiB or
// longer.
func AppendRecord(dst []byte, items []Item) ([]byte, error) {
	if uint64(len(items)) > maxLen32 {
		return dst, fmt.Errorf("%w: %d items in one record", ErrTooLarge, len(items))
	}
	size := RecordOverhead
	version := byte(recordVersion)
	for i := range items {
		it := &items[i]
		if len(it.Key) == 0 {
			return dst, fmt.Errorf("%w: item %d", ErrEmptyKey, i)
		}
		if uint64(len(it.Key)) > maxLen32 || (!it.Delete && uint64(len(it.Value)) > maxLen32) {
			return dst, fmt.Errorf("%w: item %d: key or value of 4 GiB or more", ErrTooLarge, i)
		}
		if !it.Delete && it.Expires < 0 {
			return dst, fmt.Errorf("%w: item %d expires at %d", ErrBadExpiry, i, it.Expires)
		}
		if it.expires() {
			version = recordVersion2
		}
		size += it.EncodedSize()
	}
	start := len(dst)
	dst = grow(dst, size)
	dst = append(dst, recordMagic...)
	dst = append(dst, version)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(items)))
	for i := range items {
		it := &items[i]
		var flags byte
		value := it.Value
		if it.Delete {
			flags, value = flagDelete, nil
		} else if it.expires() {
			flags = flagExpires
		}
		dst = append(dst, flags)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(it.Key)))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
		if flags == flagExpires {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(it.Expires))
		}
		dst = append(dst, it.Key...)
		dst = append(dst, value...)
	}
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:])), nil
}

// grow returns dst with room for n more bytes.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	out := make([]byte, len(dst), len(dst)+n)
	copy(out, dst)
	return out
}

// DecodeRecord decodes a record and calls fn for each of its items, in order.
//
// Data starting with "WCR" is decoded as the Go format (AppendRecord); any
// other data is decoded as the Python whycache framing (DecodePythonRecord).
// No valid Python record starts with "WCR": that prefix would be an item
// count above 1.4 billion, which needs more than 20 GB of items.
//
// The whole record is validated (magic, version, checksum, every length, no
// trailing bytes) before fn is called for any item, so fn never sees part of
// a corrupt record. Malformed data yields an error wrapping ErrCorrupt; a
// version byte other than 1 or 2 yields one saying "unsupported record
// version".
// Decoding never allocates. The Key and Value of each Item alias data and
// are valid as long as data is. An error from fn stops the decoding and is
// returned as is.
func DecodeRecord(data []byte, fn func(Item) error) error {
	if !isGoRecord(data) {
		return DecodePythonRecord(data, fn)
	}
	n, err := validateGoRecord(data)
	if err != nil {
		return err
	}
	pos := 8
	for i := 0; i < n; i++ {
		flags := data[pos]
		klen := int(binary.LittleEndian.Uint32(data[pos+1:]))
		vlen := int(binary.LittleEndian.Uint32(data[pos+5:]))
		pos += itemHeaderSize
		var exp int64
		if flags&flagExpires != 0 {
			exp = int64(binary.LittleEndian.Uint64(data[pos:]))
			pos += ExpirySize
		}
		it, next := itemAt(data, pos, klen, vlen, flags&flagDelete != 0)
		it.Expires = exp
		if err := fn(it); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// itemAt returns the item whose key starts at data[pos] and the position
// after it. The caller has validated the lengths; the slices are capped so
// that appending to them cannot overwrite data.
func itemAt(data []byte, pos, klen, vlen int, del bool) (Item, int) {
	it := Item{Key: data[pos : pos+klen : pos+klen], Delete: del}
	pos += klen
	if !del {
		it.Value = data[pos : pos+vlen : pos+vlen]
	}
	return it, pos + vlen
}

// RecordItemCount validates a record completely, as DecodeRecord does (in
// either framing), and returns its number of items. Malformed data yields an
// error wrapping ErrCorrupt.
func RecordItemCount(data []byte) (int, error) {
	if !isGoRecord(data) {
		return validatePythonRecord(data)
	}
	return validateGoRecord(data)
}

// isGoRecord reports whether data claims the Go format.
func isGoRecord(data []byte) bool {
	return len(data) >= len(recordMagic) && string(data[:len(recordMagic)]) == recordMagic
}

// validateGoRecord checks a record in the Go format completely and returns
// its item count.
func validateGoRecord(data []byte) (int, error) {
	if len(data) < RecordOverhead {
		return 0, fmt.Errorf("%w: record of %d bytes is shorter than %d", ErrCorrupt, len(data), RecordOverhead)
	}
	version := data[3]
	if version != recordVersion && version != recordVersion2 {
		return 0, fmt.Errorf("%w: unsupported record version %d", ErrCorrupt, version)
	}
	known := byte(flagDelete)
	if version == recordVersion2 {
		known |= flagExpires
	}
	expiring := false
	body := data[:len(data)-8]
	if got, want := xxhash.Sum64(body), binary.LittleEndian.Uint64(data[len(body):]); got != want {
		return 0, fmt.Errorf("%w: record checksum %016x, want %016x", ErrCorrupt, got, want)
	}
	count := uint64(binary.LittleEndian.Uint32(data[4:]))
	pos := uint64(8)
	end := uint64(len(body))
	for i := uint64(0); i < count; i++ {
		if end-pos < itemHeaderSize {
			return 0, fmt.Errorf("%w: record truncated in item %d of %d", ErrCorrupt, i, count)
		}
		flags := data[pos]
		klen := uint64(binary.LittleEndian.Uint32(data[pos+1:]))
		vlen := uint64(binary.LittleEndian.Uint32(data[pos+5:]))
		pos += itemHeaderSize
		if flags&flagExpires != 0 {
			if end-pos < ExpirySize {
				return 0, fmt.Errorf("%w: record truncated in item %d of %d", ErrCorrupt, i, count)
			}
			if exp := binary.LittleEndian.Uint64(data[pos:]); exp == 0 || exp > math.MaxInt64 {
				return 0, fmt.Errorf("%w: item %d has expiry %d", ErrCorrupt, i, exp)
			}
			pos += ExpirySize
			expiring = true
		}
		switch {
		case flags&^known != 0:
			return 0, fmt.Errorf("%w: item %d has unknown flags %#02x", ErrCorrupt, i, flags)
		case flags == flagDelete|flagExpires:
			return 0, fmt.Errorf("%w: delete item %d has an expiry", ErrCorrupt, i)
		case klen == 0:
			return 0, fmt.Errorf("%w: item %d has an empty key", ErrCorrupt, i)
		case flags&flagDelete != 0 && vlen != 0:
			return 0, fmt.Errorf("%w: delete item %d has a value", ErrCorrupt, i)
		case klen+vlen > end-pos:
			return 0, fmt.Errorf("%w: item %d lengths exceed the record", ErrCorrupt, i)
		}
		pos += klen + vlen
	}
	if pos != end {
		return 0, fmt.Errorf("%w: %d trailing bytes after %d items", ErrCorrupt, end-pos, count)
	}
	if version == recordVersion2 && !expiring {
		return 0, fmt.Errorf("%w: record version 2 without an expiring item", ErrCorrupt)
	}
	return int(count), nil
}
