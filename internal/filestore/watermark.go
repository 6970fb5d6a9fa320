package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cespare/xxhash/v2"
)

// The acknowledged-end watermark. After every successful Commit the writer
// records in the file WATERMARK where the segment being appended to ends
// after the commit's batches: the offset and the position (last id and
// nonce) of the last batch whose fdatasync completed, and the time of the
// commit. Bytes below it were acknowledged to a caller: damage there is
// corruption, never a torn tail, so no writer truncates them and no id is
// handed out twice. The file is written without a sync of its own: a
// process crash keeps it (the page cache survives), and after a power loss
// it may be stale but never ahead of the synced frames, which are intact.
//
// The file holds two slots of watermarkLen bytes at offsets 0 and
// watermarkStride, written alternately; readers take the valid slot with
// the higher sequence number, so a torn write of one slot (a reader racing
// the writer, a crash in the middle) leaves the previous watermark:
//
//	magic "WHYCWM01" | u64 seq | u64 MANIFEST generation |
//	u64 segment first id | u64 segment generation (of its name) |
//	u64 end offset | u64 last id | u64 last nonce |
//	i64 commit time (Unix ns) | u64 xxhash64 of the 72 bytes before
//
// A watermark applies to the segment it names only under a MANIFEST of its
// generation or a later one: one written under a later MANIFEST than the
// one read (an older MANIFEST restored without its watermark) is ignored.
const (
	watermarkName   = "WATERMARK"
	watermarkMagic  = "WHYCWM01"
	watermarkLen    = 80
	watermarkStride = 128
	watermarkSize   = watermarkStride + watermarkLen
)

// watermark is one decoded watermark slot.
type watermark struct {
	seq        uint64
	generation uint64 // of the MANIFEST it was written under
	// segFirst and segGen name the segment (see segmentName).
	segFirst, segGen uint64
	ack              ackedEnd
	time             int64 // Unix nanoseconds of the commit
}

// forSegment returns the acknowledged end the watermark gives segment
// name of m, or the zero ackedEnd when it is about another segment or was
// written under a later MANIFEST than m.
func (w watermark) forSegment(m *manifest, name string) ackedEnd {
	first, gen, ok := parseSegmentName(name)
	if !ok || w.seq == 0 || first != w.segFirst || gen != w.segGen || w.generation > m.Generation {
		return ackedEnd{}
	}
	return w.ack
}

// encode returns the slot bytes of w.
func (w watermark) encode() []byte {
	b := make([]byte, 0, watermarkLen)
	b = append(b, watermarkMagic...)
	for _, v := range []uint64{w.seq, w.generation, w.segFirst, w.segGen, uint64(w.ack.end), w.ack.lastID, w.ack.nonce, uint64(w.time)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// decodeWatermarkSlot decodes one slot; ok is false unless its magic and
// sum verify and its fields are plausible.
func decodeWatermarkSlot(b []byte) (watermark, bool) {
	if len(b) < watermarkLen || string(b[:8]) != watermarkMagic ||
		xxhash.Sum64(b[:watermarkLen-8]) != binary.LittleEndian.Uint64(b[watermarkLen-8:]) {
		return watermark{}, false
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8+8*i:]) }
	w := watermark{seq: u(0), generation: u(1), segFirst: u(2), segGen: u(3),
		ack: ackedEnd{end: int64(u(4)), lastID: u(5), nonce: u(6)}, time: int64(u(7))}
	if w.seq == 0 || w.segFirst == 0 || w.ack.end <= magicLen || w.ack.lastID == 0 {
		return watermark{}, false
	}
	return w, true
}

// decodeWatermark returns the valid slot of data with the higher
// sequence number; ok is false when neither is valid.
func decodeWatermark(data []byte) (w watermark, ok bool) {
	for off := 0; off+watermarkLen <= len(data) && off <= watermarkStride; off += watermarkStride {
		if s, valid := decodeWatermarkSlot(data[off:]); valid && s.seq > w.seq {
			w, ok = s, true
		}
	}
	return w, ok
}

// readWatermarkIn reads the watermark of a store directory; a missing file
// or one without a valid slot gives the zero watermark.
func readWatermarkIn(dir string) (watermark, error) {
	f, err := os.Open(filepath.Join(dir, watermarkName))
	if errors.Is(err, os.ErrNotExist) {
		return watermark{}, nil
	}
	if err != nil {
		return watermark{}, fmt.Errorf("filestore: %w", err)
	}
	defer f.Close()
	return readWatermarkFile(f)
}

// readWatermarkFile reads the watermark from an open file.
func readWatermarkFile(f *os.File) (watermark, error) {
	var buf [watermarkSize]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return watermark{}, fmt.Errorf("filestore: read %s: %w", f.Name(), err)
	}
	w, _ := decodeWatermark(buf[:n])
	return w, nil
}

// watermarkWriter is the writer's handle on the watermark file. It is
// used only under the writer lock.
type watermarkWriter struct {
	f   *os.File
	seq uint64 // the sequence number of the last slot written or read
}

// open opens (creating) the watermark file of dir and returns the current
// watermark.
func (ww *watermarkWriter) open(dir string, mode os.FileMode) (watermark, error) {
	ww.close()
	f, err := os.OpenFile(filepath.Join(dir, watermarkName), os.O_RDWR|os.O_CREATE, mode)
	if err != nil {
		return watermark{}, fmt.Errorf("filestore: %w", err)
	}
	w, err := readWatermarkFile(f)
	if err != nil {
		f.Close()
		return watermark{}, err
	}
	ww.f, ww.seq = f, w.seq
	return w, nil
}

// write records that segment name is acknowledged up to ack, by a commit
// at time now under the MANIFEST of generation generation, in the slot
// after the last one written.
func (ww *watermarkWriter) write(generation uint64, name string, ack ackedEnd, now time.Time) error {
	first, gen, _ := parseSegmentName(name)
	ww.seq++
	w := watermark{seq: ww.seq, generation: generation, segFirst: first, segGen: gen, ack: ack, time: now.UnixNano()}
	if _, err := ww.f.WriteAt(w.encode(), int64(ww.seq%2)*watermarkStride); err != nil {
		return fmt.Errorf("filestore: write %s: %w", ww.f.Name(), err)
	}
	return nil
}

// close closes the file, if open.
func (ww *watermarkWriter) close() error {
	if ww.f == nil {
		return nil
	}
	err := ww.f.Close()
	ww.f = nil
	return err
}

// watermarkReader is a reader's handle on the watermark file, kept open
// so that reading it costs a stat, an fstat and a pread. It is reopened in
// each MANIFEST epoch and whenever the file at its path is another one (a
// directory restored in place has another watermark file, and its
// MANIFEST may be the one this handle knew), and looked for again while
// the file is missing.
type watermarkReader struct {
	f     *os.File
	epoch uint64
}

// read returns the watermark of dir as of MANIFEST epoch epoch (the zero
// watermark when there is none).
func (r *watermarkReader) read(dir string, epoch uint64) (watermark, error) {
	path := filepath.Join(dir, watermarkName)
	if r.f != nil && (r.epoch != epoch || !stillAt(r.f, path)) {
		r.close()
	}
	if r.f == nil {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return watermark{}, nil
		}
		if err != nil {
			return watermark{}, fmt.Errorf("filestore: %w", err)
		}
		r.f, r.epoch = f, epoch
	}
	return readWatermarkFile(r.f)
}

// close closes the file, if open.
func (r *watermarkReader) close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// stillAt reports whether f is the file now at path: false when a restore
// replaced or removed it (or path cannot be checked).
func stillAt(f *os.File, path string) bool {
	now, err := os.Stat(path)
	if err != nil {
		return false
	}
	was, err := f.Stat()
	return err == nil && os.SameFile(was, now)
}
