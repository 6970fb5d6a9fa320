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
	fsSegMagic1 = "WHYCSEG1"
	fsSegMagic2 = "WHYCSEG2"
	// fsMagicLen is the length of both magics: a segment's frames start
	// there.
	fsMagicLen     = 8
	fsTrailerLen   = 8
	fsFlagBatchEnd = 1
	fsFlagMark     = 2
	// fsMaxFrameContents is the largest contents length a frame can carry.
	fsMaxFrameContents = 1<<32 - 1
)

// fsFormat is a segment format version (1 or 2).
type fsFormat uint8

const (
	fsFormat1 fsFormat = 1
	fsFormat2 fsFormat = 2
)

// headerLen is the length of a frame header, header sum included.
func (f fsFormat) headerLen() int {
	if f == fsFormat1 {
		return 17
	}
	return 25
}

// minFrame is the length of the smallest frame.
func (f fsFormat) minFrame() int64 { return int64(f.headerLen() + fsTrailerLen) }

// magic is the segment magic of the format.
func (f fsFormat) magic() string {
	if f == fsFormat1 {
		return fsSegMagic1
	}
	return fsSegMagic2
}

// fsAppendFrame appends one format-2 frame to dst. A mark carries no
// contents and is always a batch end. len(contents) must not exceed
// fsMaxFrameContents (the caller checks record limits first).
func fsAppendFrame(dst []byte, id, nonce uint64, last, mark bool, contents []byte) []byte {
	start := len(dst)
	var flags byte
	if last || mark {
		flags = fsFlagBatchEnd
	}
	if mark {
		flags |= fsFlagMark
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

// fsFrameHeader is a decoded, checksum-verified frame header.
type fsFrameHeader struct {
	id     uint64
	nonce  uint64
	size   int64 // of the whole frame: header, contents and sum
	length uint32
	last   bool // the batch end
	mark   bool // no record (see the format)
}

// fsParseHeader decodes the header of format f at the start of b (at least
// f.headerLen() bytes). ok is false when the header sum or the flags are
// wrong.
func fsParseHeader(b []byte, f fsFormat) (h fsFrameHeader, ok bool) {
	ok = h.parse(b, f)
	return h, ok
}

// parse decodes into h the header of format f at the start of b (at least
// f.headerLen() bytes) and reports whether its sum and flags verify. It
// is the hot path of every read.
func (h *fsFrameHeader) parse(b []byte, f fsFormat) bool {
	if f == fsFormat1 {
		b = b[:17]
		if uint32(xxhash.Sum64(b[:13])) != binary.LittleEndian.Uint32(b[13:]) || b[12]&^fsFlagBatchEnd != 0 {
			return false
		}
		h.length = binary.LittleEndian.Uint32(b)
		h.id = binary.LittleEndian.Uint64(b[4:])
		h.nonce = 0
		h.size = 17 + fsTrailerLen + int64(h.length)
		h.last, h.mark = b[12] != 0, false
		return true
	}
	b = b[:25]
	flags := b[20]
	if uint32(xxhash.Sum64(b[:21])) != binary.LittleEndian.Uint32(b[21:]) || flags&^(fsFlagBatchEnd|fsFlagMark) != 0 {
		return false
	}
	length := binary.LittleEndian.Uint32(b)
	mark := flags&fsFlagMark != 0
	if mark && (flags&fsFlagBatchEnd == 0 || length != 0) {
		return false
	}
	h.length = length
	h.id = binary.LittleEndian.Uint64(b[4:])
	h.nonce = binary.LittleEndian.Uint64(b[12:])
	h.size = 25 + fsTrailerLen + int64(length)
	h.last, h.mark = flags&fsFlagBatchEnd != 0, mark
	return true
}

// fsFrameSumOK verifies the trailing sum of a whole frame.
func fsFrameSumOK(frame []byte) bool {
	n := len(frame) - fsTrailerLen
	return xxhash.Sum64(frame[:n]) == binary.LittleEndian.Uint64(frame[n:])
}

// fsFrameStatus classifies what fsSegReader.next found at its position.
type fsFrameStatus int

const (
	// fsFrameOK: a complete frame whose sums verify.
	fsFrameOK fsFrameStatus = iota
	// fsFrameBadBody: the header verifies and the frame is complete, but the
	// trailing sum does not; the reader moved past the frame.
	fsFrameBadBody
	// fsFramePartial: the data ends inside a header or inside a frame whose
	// header verifies (an append in progress, or a torn one).
	fsFramePartial
	// fsFrameGarbage: a complete header whose sum or flags do not verify.
	fsFrameGarbage
	// fsFrameEnd: the data ends exactly here.
	fsFrameEnd
)

// String describes the status for error messages.
func (st fsFrameStatus) String() string {
	switch st {
	case fsFrameOK:
		return "frame"
	case fsFrameBadBody:
		return "damaged frame (bad checksum)"
	case fsFramePartial:
		return "incomplete frame"
	case fsFrameGarbage:
		return "damaged frame header"
	}
	return "end of data"
}

// fsDefaultReadBuf is the initial buffer size of a segment reader; frames
// larger than it grow the buffer to the frame's size.
const fsDefaultReadBuf = 64 << 10

// fsSegReader reads frames sequentially from a segment file through one
// reused buffer, with positioned reads (it never moves the file offset, so
// it can share f). It is not safe for concurrent use.
type fsSegReader struct {
	f      *os.File
	format fsFormat
	h      fsFrameHeader // the header next decoded last
	size   int64         // file size as last observed; refreshed when data runs out
	buf    []byte        // buf[:w] holds the file bytes at [start, start+w)
	r, w   int           // r indexes the next unread byte
	// start is the file offset of buf[0].
	start int64
}

// reset points the reader at f, in format, positioned at off, keeping the
// buffer.
func (r *fsSegReader) reset(f *os.File, format fsFormat, off int64) {
	if r.buf == nil {
		r.buf = make([]byte, fsDefaultReadBuf)
	}
	r.f, r.format, r.size, r.start, r.r, r.w = f, format, -1, off, 0, 0
}

// offset is the file offset of the next unread byte.
func (r *fsSegReader) offset() int64 { return r.start + int64(r.r) }

// seek moves to off; buffered bytes are reused when off is inside them.
func (r *fsSegReader) seek(off int64) {
	if off >= r.start && off <= r.start+int64(r.w) {
		r.r = int(off - r.start)
		return
	}
	r.start, r.r, r.w = off, 0, 0
}

// reload moves to off and forgets every buffered byte and the known file
// size, so the next read sees the file as it is now.
func (r *fsSegReader) reload(off int64) {
	r.start, r.r, r.w, r.size = off, 0, 0, -1
}

// statSize refreshes the known file size.
func (r *fsSegReader) statSize() error {
	fi, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	r.size = fi.Size()
	return nil
}

// fill makes buf[r:w] hold at least need bytes, or as many as the file has.
// need never exceeds the file size observed by the caller, which bounds the
// buffer's growth by real data, whatever a header claims.
func (r *fsSegReader) fill(need int) error {
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
			return fmt.Errorf("whycache: filestore: read %s: %w", r.f.Name(), err)
		}
	}
	return nil
}

// readMagic reads the segment magic at offset 0, sets the reader's format
// from it and leaves the reader after it. A file too short to hold a magic,
// or with an unknown one, is corrupt (segments are complete before a
// MANIFEST names them).
func (r *fsSegReader) readMagic() error {
	r.seek(0)
	if err := r.fill(fsMagicLen); err != nil {
		return err
	}
	if r.w-r.r < fsMagicLen {
		return fmt.Errorf("whycache: filestore: %s: not a segment file (%d bytes): %w", r.f.Name(), r.w-r.r, logstore.ErrCorrupt)
	}
	switch string(r.buf[r.r : r.r+fsMagicLen]) {
	case fsSegMagic1:
		r.format = fsFormat1
	case fsSegMagic2:
		r.format = fsFormat2
	default:
		return fmt.Errorf("whycache: filestore: %s: not a segment file (magic %q): %w", r.f.Name(), r.buf[r.r:r.r+fsMagicLen], logstore.ErrCorrupt)
	}
	r.r += fsMagicLen
	return nil
}

// next decodes the frame at the reader's position into r.h. For fsFrameOK
// it returns the contents (valid until the next call) and moves past the
// frame; for fsFrameBadBody (r.h is then valid too) it moves past the
// frame; otherwise it stays.
func (r *fsSegReader) next() ([]byte, fsFrameStatus, error) {
	hl := r.format.headerLen()
	if err := r.fill(hl); err != nil {
		return nil, 0, err
	}
	switch n := r.w - r.r; {
	case n == 0:
		return nil, fsFrameEnd, nil
	case n < hl:
		return nil, fsFramePartial, nil
	}
	if !r.h.parse(r.buf[r.r:r.w], r.format) {
		return nil, fsFrameGarbage, nil
	}
	size := r.h.size
	if end := r.offset() + size; end > r.size {
		if err := r.statSize(); err != nil {
			return nil, 0, err
		}
		if end > r.size {
			return nil, fsFramePartial, nil
		}
	}
	if err := r.fill(int(size)); err != nil {
		return nil, 0, err
	}
	if int64(r.w-r.r) < size { // truncated since the size was read
		return nil, fsFramePartial, nil
	}
	frame := r.buf[r.r : r.r+int(size)]
	r.r += len(frame)
	if !fsFrameSumOK(frame) {
		return nil, fsFrameBadBody, nil
	}
	return frame[hl : hl+int(r.h.length)], fsFrameOK, nil
}
