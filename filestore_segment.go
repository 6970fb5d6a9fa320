package whycache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/logstore"
)

// Segment file format. A segment starts with fsSegMagic and continues with
// frames, all integers little-endian:
//
//	u32 length | u64 id | u8 flags | u32 header sum | contents | u64 sum
//
// The header sum is the low 32 bits of the xxhash64 of the 13 bytes before
// it, so a frame length is trusted before the frame is read. The trailing
// sum is the xxhash64 of everything before it in the frame (header and
// contents). Flag bit 0 marks the last frame of a Commit batch; the other
// bits are zero.
const (
	fsSegMagic     = "WHYCSEG1"
	fsHeaderLen    = 17
	fsTrailerLen   = 8
	fsFrameMinLen  = fsHeaderLen + fsTrailerLen
	fsFlagBatchEnd = 1
	// fsMaxFrameContents is the largest contents length a frame can carry.
	fsMaxFrameContents = 1<<32 - 1
)

// fsAppendFrame appends one encoded frame to dst. len(contents) must not
// exceed fsMaxFrameContents (the caller checks record limits first).
func fsAppendFrame(dst []byte, id uint64, last bool, contents []byte) []byte {
	start := len(dst)
	var flags byte
	if last {
		flags = fsFlagBatchEnd
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(contents)))
	dst = binary.LittleEndian.AppendUint64(dst, id)
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(xxhash.Sum64(dst[start:])))
	dst = append(dst, contents...)
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:]))
}

// fsFrameHeader is a decoded, checksum-verified frame header.
type fsFrameHeader struct {
	length uint32
	id     uint64
	last   bool
}

// size is the encoded size of the whole frame.
func (h fsFrameHeader) size() int64 { return fsFrameMinLen + int64(h.length) }

// fsParseHeader decodes the header at the start of b (at least fsHeaderLen
// bytes). ok is false when the header sum or the flags are wrong.
func fsParseHeader(b []byte) (h fsFrameHeader, ok bool) {
	b = b[:fsHeaderLen]
	if uint32(xxhash.Sum64(b[:13])) != binary.LittleEndian.Uint32(b[13:]) || b[12]&^fsFlagBatchEnd != 0 {
		return fsFrameHeader{}, false
	}
	return fsFrameHeader{
		length: binary.LittleEndian.Uint32(b),
		id:     binary.LittleEndian.Uint64(b[4:]),
		last:   b[12]&fsFlagBatchEnd != 0,
	}, true
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
	// fsFrameGarbage: a complete header whose sum does not verify.
	fsFrameGarbage
)

// fsDefaultReadBuf is the initial buffer size of a segment reader; frames
// larger than it grow the buffer to the frame's size.
const fsDefaultReadBuf = 64 << 10

// fsSegReader reads frames sequentially from a segment file through one
// reused buffer, with positioned reads (it never moves the file offset, so
// it can share f). It is not safe for concurrent use.
type fsSegReader struct {
	f    *os.File
	size int64  // file size as last observed; refreshed when data runs out
	buf  []byte // buf[:w] holds the file bytes at [start, start+w)
	r, w int    // r indexes the next unread byte
	// start is the file offset of buf[0].
	start int64
}

// reset points the reader at f, positioned at off, keeping the buffer.
func (r *fsSegReader) reset(f *os.File, off int64) {
	if r.buf == nil {
		r.buf = make([]byte, fsDefaultReadBuf)
	}
	r.f, r.size, r.start, r.r, r.w = f, -1, off, 0, 0
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

// readMagic checks the segment magic at offset 0 and leaves the reader
// after it. A file too short to hold the magic, or with another one, is
// corrupt (segments are complete before a MANIFEST names them).
func (r *fsSegReader) readMagic() error {
	r.seek(0)
	if err := r.fill(len(fsSegMagic)); err != nil {
		return err
	}
	if r.w-r.r < len(fsSegMagic) || string(r.buf[r.r:r.r+len(fsSegMagic)]) != fsSegMagic {
		return fmt.Errorf("whycache: filestore: %s: not a segment file: %w", r.f.Name(), logstore.ErrCorrupt)
	}
	r.r += len(fsSegMagic)
	return nil
}

// next decodes the frame at the reader's position. For fsFrameOK it returns
// the header and the contents (valid until the next call) and moves past the
// frame; for fsFrameBadBody it moves past the frame; otherwise it stays.
func (r *fsSegReader) next() (fsFrameHeader, []byte, fsFrameStatus, error) {
	if err := r.fill(fsHeaderLen); err != nil {
		return fsFrameHeader{}, nil, 0, err
	}
	if r.w-r.r < fsHeaderLen {
		return fsFrameHeader{}, nil, fsFramePartial, nil
	}
	h, ok := fsParseHeader(r.buf[r.r:r.w])
	if !ok {
		return fsFrameHeader{}, nil, fsFrameGarbage, nil
	}
	end := r.offset() + h.size()
	if end > r.size {
		if err := r.statSize(); err != nil {
			return fsFrameHeader{}, nil, 0, err
		}
		if end > r.size {
			return h, nil, fsFramePartial, nil
		}
	}
	if err := r.fill(int(h.size())); err != nil {
		return fsFrameHeader{}, nil, 0, err
	}
	if int64(r.w-r.r) < h.size() { // truncated since the size was read
		return h, nil, fsFramePartial, nil
	}
	frame := r.buf[r.r : r.r+int(h.size())]
	r.r += len(frame)
	if !fsFrameSumOK(frame) {
		return h, nil, fsFrameBadBody, nil
	}
	return h, frame[fsHeaderLen : fsHeaderLen+int(h.length)], fsFrameOK, nil
}
