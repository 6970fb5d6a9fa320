package logstore

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The Python whycache framing, read and written for interoperability with
// Python deployments. All integers are big-endian:
//
//	u32 item count
//	per item:
//	    u64 key length              > 0
//	    u64 value length            0 means delete
//	    key bytes
//	    value bytes
//
// It has no version and no checksum, so corruption that keeps the lengths
// consistent is not detected.
const pythonItemHeaderSize = 16

// AppendPythonRecord appends the Python whycache encoding of items to dst and
// returns the extended slice. Deletes are encoded as empty values (the Value
// of a delete item is ignored).
//
// It returns dst unchanged and an error wrapping ErrEmptyKey if a key is
// empty, wrapping ErrNotRepresentable if a set item has an empty value or
// an expiry (the Python framing has no field for it), or wrapping
// ErrTooLarge if there are 1<<32 or more items.
func AppendPythonRecord(dst []byte, items []Item) ([]byte, error) {
	if uint64(len(items)) > math.MaxUint32 {
		return dst, fmt.Errorf("%w: %d items in one record", ErrTooLarge, len(items))
	}
	size := 4
	for i := range items {
		it := &items[i]
		if len(it.Key) == 0 {
			return dst, fmt.Errorf("%w: item %d", ErrEmptyKey, i)
		}
		if !it.Delete && len(it.Value) == 0 {
			return dst, fmt.Errorf("%w: item %d sets an empty value", ErrNotRepresentable, i)
		}
		if it.expires() {
			return dst, fmt.Errorf("%w: item %d expires", ErrNotRepresentable, i)
		}
		size += pythonItemHeaderSize + len(it.Key)
		if !it.Delete {
			size += len(it.Value)
		}
	}
	dst = grow(dst, size)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(items)))
	for i := range items {
		it := &items[i]
		value := it.Value
		if it.Delete {
			value = nil
		}
		dst = binary.BigEndian.AppendUint64(dst, uint64(len(it.Key)))
		dst = binary.BigEndian.AppendUint64(dst, uint64(len(value)))
		dst = append(dst, it.Key...)
		dst = append(dst, value...)
	}
	return dst, nil
}

// DecodePythonRecord decodes a record in the Python whycache framing and
// calls fn for each item, in order; an empty value decodes as
// Item{Key: key, Delete: true}. Most callers want DecodeRecord, which
// detects the framing.
//
// Decoding is strict: the count and every length must fit the data exactly,
// keys must be non-empty and no bytes may follow the last item; otherwise
// the error wraps ErrCorrupt. The whole record is validated before fn is
// called for any item, and decoding never allocates. The Key and Value of
// each Item alias data and are valid as long as data is. An error from fn
// stops the decoding and is returned as is.
func DecodePythonRecord(data []byte, fn func(Item) error) error {
	n, err := validatePythonRecord(data)
	if err != nil {
		return err
	}
	pos := 4
	for i := 0; i < n; i++ {
		// validatePythonRecord proved that both lengths fit in data.
		klen := int(binary.BigEndian.Uint64(data[pos:]))
		vlen := int(binary.BigEndian.Uint64(data[pos+8:]))
		it, next := itemAt(data, pos+pythonItemHeaderSize, klen, vlen, vlen == 0)
		if err := fn(it); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// validatePythonRecord checks a record in the Python framing completely and
// returns its item count.
func validatePythonRecord(data []byte) (int, error) {
	if len(data) < 4 {
		return 0, fmt.Errorf("%w: python record of %d bytes has no item count", ErrCorrupt, len(data))
	}
	count := uint64(binary.BigEndian.Uint32(data))
	pos := uint64(4)
	end := uint64(len(data))
	for i := uint64(0); i < count; i++ {
		if end-pos < pythonItemHeaderSize {
			return 0, fmt.Errorf("%w: python record truncated in item %d of %d", ErrCorrupt, i, count)
		}
		klen := binary.BigEndian.Uint64(data[pos:])
		vlen := binary.BigEndian.Uint64(data[pos+8:])
		pos += pythonItemHeaderSize
		rest := end - pos
		switch {
		case klen == 0:
			return 0, fmt.Errorf("%w: python item %d has an empty key", ErrCorrupt, i)
		case klen > rest || vlen > rest-klen:
			return 0, fmt.Errorf("%w: python item %d lengths exceed the record", ErrCorrupt, i)
		}
		pos += klen + vlen
	}
	if pos != end {
		return 0, fmt.Errorf("%w: %d trailing bytes after %d python items", ErrCorrupt, end-pos, count)
	}
	return int(count), nil
}
