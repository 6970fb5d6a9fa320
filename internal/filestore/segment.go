package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/logstore"
)

// Segment file formats. A segment starts with an 8-byte magic naming its
// format and continues with frames, one per record, all integers
// little-endian.
//
// Format 2 (magic "WHYCSEG2"), the one this code writes:
//
//	u32 length | u64 id | u64 nonce | u8 flags | u32 header sum | contents | u64 sum
//
// Format 1 (magic "WHYCSEG1"), still read, has no nonce field (its frames
// read as nonce 0):
//
//	u32 length | u64 id | u8 flags | u32 header sum | contents | u64 sum
//
// The header sum is the low 32 bits of the xxhash64 of the header bytes
// before it, so a frame length is trusted before the frame is read. The
// trailing sum is the xxhash64 of everything before it in the frame
// (header and contents). Flag bit 0 marks the last frame of a Commit batch
// (the batch end); every frame of a batch carries the batch's nonce. Flag
// bit 1 (format 2 only) marks a mark: a frame without a record (length 0,
// always a batch end) that Compact leaves in place of a dropped batch-end
// frame, so the commit's position (id and nonce) stays verifiable. The
// other bits are zero.
const (
	segMagic1 = "WHYCSEG1"
	segMagic2 = "WHYCSEG2"
	// magicLen is the length of both magics: a segment's frames start
	// there.
	magicLen     = 8
	trailerLen   = 8
	flagBatchEnd = 1
	flagMark     = 2
	// maxFrameContents is the largest contents length a frame can carry.
	maxFrameContents = 1<<32 - 1
)

// segFormat is a segment format version (1 or 2).
type segFormat uint8

const (
	format1 segFormat = 1
	format2 segFormat = 2
)

// headerLen is the length of a frame header, header sum included.
func (f segFormat) headerLen() int {
	if f == format1 {
		return 17
	}
	return 25
}

// minFrame is the length of the smallest frame.
func (f segFormat) minFrame() int64 { return int64(f.headerLen() + trailerLen) }

// magic is the segment magic of the format.
func (f segFormat) magic() string {
	if f == format1 {
		return segMagic1
	}
	return segMagic2
}

// appendFrame appends one format-2 frame to dst. A mark carries no
// contents and is always a batch end. len(contents) must not exceed
// maxFrameContents (the caller checks record limits first).
func appendFrame(dst []byte, id, nonce uint64, last, mark bool, contents []byte) []byte {
	start := len(dst)
	var flags byte
	if last || mark {
		flags = flagBatchEnd
	}
	if mark {
		flags |= flagMark
		contents = nil
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(contents)))
	dst = binary.LittleEndian.AppendUint64(dst, id)
	dst = binary.LittleEndian.AppendUint64(dst, nonce)
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(xxhash.Sum64(dst[start:])))
	dst = append(dst, contents...)
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:]))
}

// frameHeader is a decoded, checksum-verified frame header.
type frameHeader struct {
	id     uint64
	nonce  uint64
	size   int64 // of the whole frame: header, contents and sum
	length uint32
	last   bool // the batch end
	mark   bool // no record (see the format)
}

// parseHeader decodes the header of format f at the start of b (at least
// f.headerLen() bytes). ok is false when the header sum or the flags are
// wrong.
func parseHeader(b []byte, f segFormat) (h frameHeader, ok bool) {
	ok = h.parse(b, f)
	return h, ok
}

// parse decodes into h the header of format f at the start of b (at least
// f.headerLen() bytes) and reports whether its sum and flags verify. It
// is the hot path of every read.
func (h *frameHeader) parse(b []byte, f segFormat) bool {
	if f == format1 {
		b = b[:17]
		if uint32(xxhash.Sum64(b[:13])) != binary.LittleEndian.Uint32(b[13:]) || b[12]&^flagBatchEnd != 0 {
			return false
		}
		h.length = binary.LittleEndian.Uint32(b)
		h.id = binary.LittleEndian.Uint64(b[4:])
		h.nonce = 0
		h.size = 17 + trailerLen + int64(h.length)
		h.last, h.mark = b[12] != 0, false
		return true
	}
	b = b[:25]
	flags := b[20]
	if uint32(xxhash.Sum64(b[:21])) != binary.LittleEndian.Uint32(b[21:]) || flags&^(flagBatchEnd|flagMark) != 0 {
		return false
	}
	length := binary.LittleEndian.Uint32(b)
	mark := flags&flagMark != 0
	if mark && (flags&flagBatchEnd == 0 || length != 0) {
		return false
	}
	h.length = length
	h.id = binary.LittleEndian.Uint64(b[4:])
	h.nonce = binary.LittleEndian.Uint64(b[12:])
	h.size = 25 + trailerLen + int64(length)
	h.last, h.mark = flags&flagBatchEnd != 0, mark
	return true
}

// frameSumOK verifies the trailing sum of a whole frame.
func frameSumOK(frame []byte) bool {
	n := len(frame) - trailerLen
	return xxhash.Sum64(frame[:n]) == binary.LittleEndian.Uint64(frame[n:])
}

// frameStatus classifies what segReader.next found at its position.
type frameStatus int

const (
	// frameOK: a complete frame whose sums verify.
	frameOK frameStatus = iota
	// frameBadBody: the header verifies and the frame is complete, but the
	// trailing sum does not; the reader moved past the frame.
	frameBadBody
	// framePartial: the data ends inside a header or inside a frame whose
	// header verifies (an append in progress, or a torn one).
	framePartial
	// frameGarbage: a complete header whose sum or flags do not verify.
	frameGarbage
	// frameEnd: the data ends exactly here.
	frameEnd
)

// String describes the status for error messages.
func (st frameStatus) String() string {
	switch st {
	case frameOK:
		return "frame"
	case frameBadBody:
		return "damaged frame (bad checksum)"
	case framePartial:
		return "incomplete frame"
	case frameGarbage:
		return "damaged frame header"
	}
	return "end of data"
}

// defaultReadBuf is the initial buffer size of a segment reader; frames
// larger than it grow the buffer to the frame's size.
const defaultReadBuf = 64 << 10

// segReader reads frames sequentially from a segment file through one
// reused buffer, with positioned reads (it never moves the file offset, so
// it can share f). It is not safe for concurrent use.
type segReader struct {
	f      *os.File
	format segFormat
	h      frameHeader // the header next decoded last
	size   int64       // file size as last observed; refreshed when data runs out
	buf    []byte      // buf[:w] holds the file bytes at [start, start+w)
	r, w   int         // r indexes the next unread byte
	// start is the file offset of buf[0].
	start int64
}

// reset points the reader at f, in format, positioned at off, keeping the
// buffer.
func (r *segReader) reset(f *os.File, format segFormat, off int64) {
	if r.buf == nil {
		r.buf = make([]byte, defaultReadBuf)
	}
	r.f, r.format, r.size, r.start, r.r, r.w = f, format, -1, off, 0, 0
}

// offset is the file offset of the next unread byte.
func (r *segReader) offset() int64 { return r.start + int64(r.r) }

// seek moves to off; buffered bytes are reused when off is inside them.
func (r *segReader) seek(off int64) {
	if off >= r.start && off <= r.start+int64(r.w) {
		r.r = int(off - r.start)
		return
	}
	r.start, r.r, r.w = off, 0, 0
}

// reload moves to off and forgets every buffered byte and the known file
// size, so the next read sees the file as it is now.
func (r *segReader) reload(off int64) {
	r.start, r.r, r.w, r.size = off, 0, 0, -1
}

// statSize refreshes the known file size.
func (r *segReader) statSize() error {
	fi, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	r.size = fi.Size()
	return nil
}

// fill makes buf[r:w] hold at least need bytes, or as many as the file has.
// need never exceeds the file size observed by the caller, which bounds the
// buffer's growth by real data, whatever a header claims.
func (r *segReader) fill(need int) error {
	if r.w-r.r >= need {
		return nil
	}
	if r.r > 0 {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.start += int64(r.r)
		r.r, r.w = 0, n
	}
	if need > len(r.buf) {
		nb := make([]byte, need)
		copy(nb, r.buf[:r.w])
		r.buf = nb
	}
	for r.w < need {
		n, err := r.f.ReadAt(r.buf[r.w:], r.start+int64(r.w))
		r.w += n
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("filestore: read %s: %w", r.f.Name(), err)
		}
	}
	return nil
}

// readMagic reads the segment magic at offset 0, sets the reader's format
// from it and leaves the reader after it. A file too short to hold a magic,
// or with an unknown one, is corrupt (segments are complete before a
// MANIFEST names them).
func (r *segReader) readMagic() error {
	r.seek(0)
	if err := r.fill(magicLen); err != nil {
		return err
	}
	if r.w-r.r < magicLen {
		return fmt.Errorf("filestore: %s: not a segment file (%d bytes): %w", r.f.Name(), r.w-r.r, logstore.ErrCorrupt)
	}
	switch string(r.buf[r.r : r.r+magicLen]) {
	case segMagic1:
		r.format = format1
	case segMagic2:
		r.format = format2
	default:
		return fmt.Errorf("filestore: %s: not a segment file (magic %q): %w", r.f.Name(), r.buf[r.r:r.r+magicLen], logstore.ErrCorrupt)
	}
	r.r += magicLen
	return nil
}

// next decodes the frame at the reader's position into r.h. For frameOK
// it returns the contents (valid until the next call) and moves past the
// frame; for frameBadBody (r.h is then valid too) it moves past the
// frame; otherwise it stays.
func (r *segReader) next() ([]byte, frameStatus, error) {
	hl := r.format.headerLen()
	if err := r.fill(hl); err != nil {
		return nil, 0, err
	}
	switch n := r.w - r.r; {
	case n == 0:
		return nil, frameEnd, nil
	case n < hl:
		return nil, framePartial, nil
	}
	if !r.h.parse(r.buf[r.r:r.w], r.format) {
		return nil, frameGarbage, nil
	}
	size := r.h.size
	if end := r.offset() + size; end > r.size {
		if err := r.statSize(); err != nil {
			return nil, 0, err
		}
		if end > r.size {
			return nil, framePartial, nil
		}
	}
	if err := r.fill(int(size)); err != nil {
		return nil, 0, err
	}
	if int64(r.w-r.r) < size { // truncated since the size was read
		return nil, framePartial, nil
	}
	frame := r.buf[r.r : r.r+int(size)]
	r.r += len(frame)
	if !frameSumOK(frame) {
		return nil, frameBadBody, nil
	}
	return frame[hl : hl+int(r.h.length)], frameOK, nil
}
