package whycache

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/whycache/whycache/logstore"
)

// fsBatch is one complete Commit batch found by fsScanner: frames with
// consecutive positions in the file whose last one carries the batch-end
// flag.
type fsBatch struct {
	start, end      int64 // file offsets of the batch
	firstID, lastID uint64
	frames          int
	// single holds the contents when frames == 1, valid until the
	// scanner's next call.
	single []byte
}

// fsScanner walks the complete batches of one segment file. Where the
// complete batches end, the tail begins: bytes of an append in progress or
// of a torn one, invisible to readers.
//
// A tail is told from damage thus. A frame whose trailing sum fails but
// whose header verifies is skipped by its trusted length; if a complete
// batch follows it, the file is corrupt. A header that does not verify
// ends the readable data; if a verifying frame with a higher id lies
// anywhere after it, the file is corrupt. A write cut short (by a crash or
// seen while in progress) leaves a prefix of valid frames, never a bad one,
// so a live log only ever shows the first case after a power failure.
type fsScanner struct {
	rd fsSegReader
	// lastID is the id of the last frame of the last complete batch passed
	// (0 before the first one), end the offset just past that batch.
	lastID uint64
	end    int64
}

// start positions the scanner on f at off, the end of a complete batch
// whose last id is lastID, or at 0 for the start of the segment (which
// checks the segment magic).
func (s *fsScanner) start(f *os.File, off int64, lastID uint64) error {
	s.rd.reset(f, off)
	s.lastID, s.end = lastID, off
	if off == 0 {
		if err := s.rd.readMagic(); err != nil {
			return err
		}
		s.end = s.rd.offset()
	}
	return nil
}

// fsCorruptf returns an error wrapping logstore.ErrCorrupt.
func fsCorruptf(format string, args ...any) error {
	return fmt.Errorf("whycache: filestore: "+format+": %w", append(args, logstore.ErrCorrupt)...)
}

// nextBatch validates the next complete batch and moves past it. ok is
// false at the tail; the scanner then stays at the tail's start.
func (s *fsScanner) nextBatch() (b fsBatch, ok bool, err error) {
	b.start = s.end
	prev, bad := s.lastID, false
	for {
		h, contents, st, err := s.rd.next()
		if err != nil {
			return fsBatch{}, false, err
		}
		switch st {
		case fsFrameOK:
			if h.id <= prev {
				return fsBatch{}, false, fsCorruptf("%s: frame id %d at offset %d follows id %d",
					s.rd.f.Name(), h.id, s.rd.offset()-h.size(), prev)
			}
			prev = h.id
			if b.frames == 0 {
				b.firstID = h.id
			}
			b.frames++
			if !h.last {
				continue
			}
			if bad {
				return fsBatch{}, false, fsCorruptf("%s: damaged frame before the batch ending at id %d",
					s.rd.f.Name(), h.id)
			}
			b.lastID, b.end = h.id, s.rd.offset()
			if b.frames == 1 {
				b.single = contents
			}
			s.lastID, s.end = b.lastID, b.end
			return b, true, nil
		case fsFrameBadBody:
			bad = true
		case fsFrameGarbage:
			found, err := fsFindFrameAfter(s.rd.f, s.rd.offset()+1, s.lastID)
			if err != nil {
				return fsBatch{}, false, err
			}
			if found {
				return fsBatch{}, false, fsCorruptf("%s: damaged frame header at offset %d",
					s.rd.f.Name(), s.rd.offset())
			}
			s.rd.seek(s.end)
			return fsBatch{}, false, nil
		default: // fsFramePartial
			s.rd.seek(s.end)
			return fsBatch{}, false, nil
		}
	}
}

// eachFrame calls fn for every frame of b, a batch nextBatch just returned,
// and leaves the scanner after it. contents is valid only during the call.
func (s *fsScanner) eachFrame(b fsBatch, fn func(id uint64, contents []byte) error) error {
	if b.frames == 1 {
		return fn(b.lastID, b.single)
	}
	s.rd.seek(b.start)
	for i := 0; i < b.frames; i++ {
		h, contents, st, err := s.rd.next()
		if err != nil {
			return err
		}
		if st != fsFrameOK {
			return fsCorruptf("%s: batch at offset %d changed while read", s.rd.f.Name(), b.start)
		}
		if err := fn(h.id, contents); err != nil {
			return err
		}
	}
	s.rd.seek(b.end)
	return nil
}

// scanToEnd passes every complete batch up to the tail.
func (s *fsScanner) scanToEnd() error {
	for {
		_, ok, err := s.nextBatch()
		if err != nil || !ok {
			return err
		}
	}
}

// fsResyncChunk is how much fsFindFrameAfter reads at a time.
const fsResyncChunk = 1 << 20

// fsFindFrameAfter reports whether a frame with valid sums and an id above
// minID starts anywhere at or after offset from in f. It reads the rest of
// the file once; it runs only when a header fails to verify, which a crash
// alone does not produce.
func fsFindFrameAfter(f *os.File, from int64, minID uint64) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("whycache: filestore: %w", err)
	}
	size := fi.Size()
	chunk := make([]byte, fsResyncChunk+fsHeaderLen)
	var frame []byte
	for base := from; base+fsFrameMinLen <= size; base += fsResyncChunk {
		n, err := f.ReadAt(chunk, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("whycache: filestore: read %s: %w", f.Name(), err)
		}
		for i := 0; i+fsHeaderLen <= n && i < fsResyncChunk; i++ {
			h, ok := fsParseHeader(chunk[i:])
			if !ok || h.id <= minID || base+int64(i)+h.size() > size {
				continue
			}
			if int64(cap(frame)) < h.size() {
				frame = make([]byte, h.size())
			}
			frame = frame[:h.size()]
			if _, err := f.ReadAt(frame, base+int64(i)); err != nil {
				return false, fmt.Errorf("whycache: filestore: read %s: %w", f.Name(), err)
			}
			if fsFrameSumOK(frame) {
				return true, nil
			}
		}
	}
	return false, nil
}
