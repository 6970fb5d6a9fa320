package filestore

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/whycache/whycache/logstore"
)

// segPos is a position in a segment just past a complete batch (or just
// past the magic, with lastID 0): the offset, the id and nonce of the
// batch's last frame, and the segment's format.
type segPos struct {
	off           int64
	lastID, nonce uint64
	format        segFormat
}

// ackedEnd is an acknowledged end of a segment: the offset just past the last
// batch known to be acknowledged (synced before its Commit returned, or
// before a MANIFEST naming the segment was published), and that batch's
// last id and nonce. The zero ackedEnd acknowledges nothing.
type ackedEnd struct {
	end           int64
	lastID, nonce uint64
}

// scanCheck is what a scan of one segment verifies beyond the frames' own
// sums (see manifest.segCheck).
type scanCheck struct {
	// lo and hi bound the ids of the segment's frames: lo <= id < hi (no
	// upper bound when hi is 0).
	lo, hi uint64
	// sealed segments end exactly after their last complete batch; when
	// the MANIFEST recorded it, end is that size and position.
	sealed bool
	end    ackedEnd
	// For the segment being appended to (not sealed): ack is its
	// acknowledged end as far as known (the larger of the MANIFEST's and
	// the watermark's), and loadAck, for readers, reads the watermark again
	// (it returns the zero ackedEnd when the watermark is about another
	// segment). Damage below the acknowledged end is corruption; beyond
	// it, bytes that do not form complete batches are a torn tail.
	ack     ackedEnd
	loadAck func() (ackedEnd, error)
}

// batch is one complete Commit batch found by scanner: frames with
// consecutive positions in the file whose last one carries the batch-end
// flag.
type batch struct {
	start, end      int64 // file offsets of the batch
	firstID, lastID uint64
	nonce           uint64
	frames          int // frames, the mark included
	// single holds the contents when the batch is one record frame (frames
	// == 1, not a mark), valid until the scanner's next call.
	single     []byte
	singleMark bool // the batch is a mark alone
}

// batchFrame is one frame of a batch, as scanner.eachFrame passes it.
type batchFrame struct {
	id, nonce uint64
	last      bool   // the batch end
	mark      bool   // no record; contents is empty
	contents  []byte // valid only during the callback
}

// scanner walks the complete batches of one segment file and verifies
// what scanCheck asks. Where the complete batches end, the segment either
// ends (a sealed one must end exactly there) or its tail begins: bytes of
// an append in progress or of one torn by a crash, invisible to readers.
// Bytes that should be there and are not, or are damaged, are
// logstore.ErrCorrupt naming the file and the offset:
//
//   - a sealed segment: any frame that does not verify, any byte after the
//     last complete batch, and an end other than the one the MANIFEST
//     recorded;
//   - the segment being appended to: a frame that does not verify, or the
//     end of the data, before the acknowledged end (scanCheck.ack), and a
//     batch that does not end exactly there with the acknowledged id;
//   - a format-1 segment being appended to (written before the
//     acknowledged end was kept): a damaged frame followed anywhere by a
//     verifying one with a higher id (a torn write leaves a prefix of
//     verifying frames, never a damaged one before a good one);
//   - anywhere: ids not ascending, outside [lo, hi), or a nonce that
//     differs within a batch.
type scanner struct {
	rd    segReader
	check scanCheck
	b     batch // the batch nextBatch returned last
	// lastID and nonce are those of the last complete batch passed (0
	// before the first one), end the offset just past it.
	lastID, nonce uint64
	end           int64
}

// start positions the scanner on f at p (the end of a complete batch), or
// at the start of the segment when p.off is 0, which reads the magic and
// so the format.
func (s *scanner) start(f *os.File, p segPos, check scanCheck) error {
	s.rd.reset(f, p.format, p.off)
	s.check = check
	s.lastID, s.nonce, s.end = p.lastID, p.nonce, p.off
	if p.off == 0 {
		if err := s.rd.readMagic(); err != nil {
			return err
		}
		s.end = s.rd.offset()
	}
	return nil
}

// pos returns the scanner's position: just past the last complete batch.
func (s *scanner) pos() segPos {
	return segPos{off: s.end, lastID: s.lastID, nonce: s.nonce, format: s.rd.format}
}

// corruptf returns an error wrapping logstore.ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("filestore: "+format+": %w", append(args, logstore.ErrCorrupt)...)
}

// nextBatch validates the next complete batch and moves past it. ok is
// false where the complete batches end; the scanner then stays there. b
// points into the scanner: it is valid until the next call.
func (s *scanner) nextBatch() (b *batch, ok bool, err error) {
	for retried := false; ; retried = true {
		st, at, err := s.scanBatch()
		if err != nil {
			return nil, false, err
		}
		if st == frameOK {
			return &s.b, true, nil
		}
		retry, err := s.stop(st, at, retried)
		if err != nil {
			return nil, false, err
		}
		if !retry {
			s.rd.seek(s.end)
			return nil, false, nil
		}
		s.rd.reload(s.end)
	}
}

// scanBatch reads the batch at s.end into s.b. When it is not complete,
// st says what was found at offset at (the first frame that does not
// verify, or the end of the data); st is frameOK when it is.
func (s *scanner) scanBatch() (st frameStatus, at int64, err error) {
	b, h := &s.b, &s.rd.h
	*b = batch{start: s.end}
	prev := s.lastID
	for {
		at = s.rd.offset()
		contents, st, err := s.rd.next()
		if err != nil {
			return 0, 0, err
		}
		if st != frameOK {
			return st, at, nil
		}
		if h.id <= prev || h.id < s.check.lo || (s.check.hi != 0 && h.id >= s.check.hi) || (b.frames > 0 && h.nonce != b.nonce) {
			return 0, 0, s.badFrame(prev, at, b)
		}
		prev = h.id
		if b.frames == 0 {
			b.firstID, b.nonce = h.id, h.nonce
		}
		b.frames++
		if !h.last {
			continue
		}
		b.lastID, b.end = h.id, s.rd.offset()
		if b.frames == 1 {
			b.single, b.singleMark = contents, h.mark
		}
		if a := s.check.ack.end; a > b.start && a <= b.end && !s.check.sealed {
			if err := s.checkAck(b); err != nil {
				return 0, 0, err
			}
		}
		s.lastID, s.nonce, s.end = b.lastID, b.nonce, b.end
		return frameOK, 0, nil
	}
}

// badFrame returns the error for the frame just read (at offset at) whose
// id or nonce does not fit the frames before it (prev is the previous
// frame's id, b the batch so far).
func (s *scanner) badFrame(prev uint64, at int64, b *batch) error {
	name, h := s.rd.f.Name(), &s.rd.h
	switch {
	case h.id <= prev:
		return corruptf("%s: frame id %d at offset %d follows id %d", name, h.id, at, prev)
	case b.frames > 0 && h.nonce != b.nonce:
		return corruptf("%s: frame id %d at offset %d has nonce %x, its batch %x", name, h.id, at, h.nonce, b.nonce)
	}
	return corruptf("%s: frame id %d at offset %d outside the segment's id range [%d, %s)", name, h.id, at, s.check.lo, fmtBound(s.check.hi))
}

// fmtBound formats an upper id bound, 0 meaning none.
func fmtBound(hi uint64) string {
	if hi == 0 {
		return "∞"
	}
	return fmt.Sprint(hi)
}

// checkAck verifies that the acknowledged end of the segment being
// appended to falls on a batch end, at the acknowledged id.
func (s *scanner) checkAck(b *batch) error {
	a := s.check.ack
	name := s.rd.f.Name()
	switch {
	case b.start < a.end && a.end < b.end:
		return corruptf("%s: the batch at offset %d..%d spans the acknowledged end at offset %d", name, b.start, b.end, a.end)
	case b.end == a.end && (b.lastID != a.lastID || b.nonce != a.nonce):
		return corruptf("%s: the batch ending at the acknowledged offset %d ends at id %d (nonce %x), acknowledged id %d (nonce %x)",
			name, a.end, b.lastID, b.nonce, a.lastID, a.nonce)
	}
	return nil
}

// stop judges the end of the complete batches at s.end, where a scan found
// st at offset at. retry asks the caller to read again from s.end: a
// reader found less than the watermark acknowledges, which happens when it
// read before a writer's append completed and the watermark after.
func (s *scanner) stop(st frameStatus, at int64, retried bool) (retry bool, err error) {
	name := s.rd.f.Name()
	clean := st == frameEnd && at == s.end
	if s.check.sealed {
		if !clean {
			return false, corruptf("%s: %s at offset %d of a sealed segment (the complete batches before it end at offset %d)", name, st, at, s.end)
		}
		if e := s.check.end; e.end != 0 && (s.end != e.end || s.lastID != e.lastID || s.nonce != e.nonce) {
			return false, corruptf("%s: sealed segment ends at offset %d after id %d (nonce %x); the MANIFEST recorded offset %d after id %d (nonce %x)",
				name, s.end, s.lastID, s.nonce, e.end, e.lastID, e.nonce)
		}
		return false, nil
	}
	if s.rd.format == format1 {
		return false, s.stopFormat1(st, at)
	}
	if s.end >= s.check.ack.end && s.check.loadAck != nil && !retried {
		// The watermark may have moved past s.end since it was read.
		a, err := s.check.loadAck()
		if err != nil {
			return false, err
		}
		if a.end > s.check.ack.end {
			s.check.ack = a
		}
	}
	acked := s.check.ack.end
	if s.end >= acked {
		return false, nil // a tail: nothing acknowledged is missing
	}
	if s.check.loadAck != nil && !retried {
		return true, nil
	}
	if clean {
		return false, corruptf("%s: data ends at offset %d, but %d bytes were acknowledged (up to id %d)", name, at, acked, s.check.ack.lastID)
	}
	return false, corruptf("%s: %s at offset %d, below the acknowledged end at offset %d (id %d)", name, st, at, acked, s.check.ack.lastID)
}

// stopFormat1 judges where the complete batches of a format-1 segment
// being appended to end: a damaged frame followed by a verifying frame
// with a higher id is corruption, anything else a tail.
func (s *scanner) stopFormat1(st frameStatus, at int64) error {
	if st != frameGarbage && st != frameBadBody {
		return nil
	}
	found, err := findFrameAfter(s.rd.f, format1, at+1, s.lastID)
	if err != nil {
		return err
	}
	if found {
		return corruptf("%s: %s at offset %d, followed by later frames", s.rd.f.Name(), st, at)
	}
	return nil
}

// eachFrame calls fn for every frame of b, a batch nextBatch just returned,
// and leaves the scanner after it. contents is valid only during the call.
func (s *scanner) eachFrame(b *batch, fn func(batchFrame) error) error {
	if b.frames == 1 {
		return fn(batchFrame{id: b.lastID, nonce: b.nonce, last: true, mark: b.singleMark, contents: b.single})
	}
	s.rd.seek(b.start)
	h := &s.rd.h
	for i := 0; i < b.frames; i++ {
		contents, st, err := s.rd.next()
		if err != nil {
			return err
		}
		if st != frameOK {
			return corruptf("%s: batch at offset %d changed while read", s.rd.f.Name(), b.start)
		}
		if err := fn(batchFrame{id: h.id, nonce: h.nonce, last: h.last, mark: h.mark, contents: contents}); err != nil {
			return err
		}
	}
	s.rd.seek(b.end)
	return nil
}

// scanToEnd passes every complete batch up to where they end.
func (s *scanner) scanToEnd() error {
	for {
		_, ok, err := s.nextBatch()
		if err != nil || !ok {
			return err
		}
	}
}

// resyncChunk is how much findFrameAfter reads at a time.
const resyncChunk = 1 << 20

// findFrameAfter reports whether a frame of format f with valid sums and
// an id above minID starts anywhere at or after offset from in file. It
// reads the rest of the file once; it runs only for format-1 segments when
// a frame fails to verify, which a crash alone does not produce.
func findFrameAfter(file *os.File, f segFormat, from int64, minID uint64) (bool, error) {
	fi, err := file.Stat()
	if err != nil {
		return false, fmt.Errorf("filestore: %w", err)
	}
	size := fi.Size()
	hl := f.headerLen()
	chunk := make([]byte, resyncChunk+hl)
	var frame []byte
	for base := from; base+f.minFrame() <= size; base += resyncChunk {
		n, err := file.ReadAt(chunk, base)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("filestore: read %s: %w", file.Name(), err)
		}
		for i := 0; i+hl <= n && i < resyncChunk; i++ {
			h, ok := parseHeader(chunk[i:], f)
			if !ok || h.id <= minID || base+int64(i)+h.size > size {
				continue
			}
			if int64(cap(frame)) < h.size {
				frame = make([]byte, h.size)
			}
			frame = frame[:h.size]
			if _, err := file.ReadAt(frame, base+int64(i)); err != nil {
				return false, fmt.Errorf("filestore: read %s: %w", file.Name(), err)
			}
			if frameSumOK(frame) {
				return true, nil
			}
		}
	}
	return false, nil
}
