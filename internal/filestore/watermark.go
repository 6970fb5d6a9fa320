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
// The file holds two slots of fsWatermarkLen bytes at offsets 0 and
// fsWatermarkStride, written alternately; readers take the valid slot with
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
	fsWatermarkName   = "WATERMARK"
	fsWatermarkMagic  = "WHYCWM01"
	fsWatermarkLen    = 80
	fsWatermarkStride = 128
	fsWatermarkSize   = fsWatermarkStride + fsWatermarkLen
)

// fsWatermark is one decoded watermark slot.
type fsWatermark struct {
	seq        uint64
	generation uint64 // of the MANIFEST it was written under
	// segFirst and segGen name the segment (see fsSegmentName).
	segFirst, segGen uint64
	ack              fsAck
	time             int64 // Unix nanoseconds of the commit
}

// forSegment returns the acknowledged end the watermark gives segment
// name of m, or the zero fsAck when it is about another segment or was
// written under a later MANIFEST than m.
func (w fsWatermark) forSegment(m *fsManifest, name string) fsAck {
	first, gen, ok := fsParseSegmentName(name)
	if !ok || w.seq == 0 || first != w.segFirst || gen != w.segGen || w.generation > m.Generation {
		return fsAck{}
	}
	return w.ack
}

// encode returns the slot bytes of w.
func (w fsWatermark) encode() []byte {
	b := make([]byte, 0, fsWatermarkLen)
	b = append(b, fsWatermarkMagic...)
	for _, v := range []uint64{w.seq, w.generation, w.segFirst, w.segGen, uint64(w.ack.end), w.ack.lastID, w.ack.nonce, uint64(w.time)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// fsDecodeWatermarkSlot decodes one slot; ok is false unless its magic and
// sum verify and its fields are plausible.
func fsDecodeWatermarkSlot(b []byte) (fsWatermark, bool) {
	if len(b) < fsWatermarkLen || string(b[:8]) != fsWatermarkMagic ||
		xxhash.Sum64(b[:fsWatermarkLen-8]) != binary.LittleEndian.Uint64(b[fsWatermarkLen-8:]) {
		return fsWatermark{}, false
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8+8*i:]) }
	w := fsWatermark{seq: u(0), generation: u(1), segFirst: u(2), segGen: u(3),
		ack: fsAck{end: int64(u(4)), lastID: u(5), nonce: u(6)}, time: int64(u(7))}
	if w.seq == 0 || w.segFirst == 0 || w.ack.end <= fsMagicLen || w.ack.lastID == 0 {
		return fsWatermark{}, false
	}
	return w, true
}

// fsDecodeWatermark returns the valid slot of data with the higher
// sequence number; ok is false when neither is valid.
func fsDecodeWatermark(data []byte) (w fsWatermark, ok bool) {
	for off := 0; off+fsWatermarkLen <= len(data) && off <= fsWatermarkStride; off += fsWatermarkStride {
		if s, valid := fsDecodeWatermarkSlot(data[off:]); valid && s.seq > w.seq {
			w, ok = s, true
		}
	}
	return w, ok
}

// fsReadWatermark reads the watermark of a store directory; a missing file
// or one without a valid slot gives the zero fsWatermark.
func fsReadWatermark(dir string) (fsWatermark, error) {
	f, err := os.Open(filepath.Join(dir, fsWatermarkName))
	if errors.Is(err, os.ErrNotExist) {
		return fsWatermark{}, nil
	}
	if err != nil {
		return fsWatermark{}, fmt.Errorf("whycache: filestore: %w", err)
	}
	defer f.Close()
	return fsReadWatermarkFile(f)
}

// fsReadWatermarkFile reads the watermark from an open file.
func fsReadWatermarkFile(f *os.File) (fsWatermark, error) {
	var buf [fsWatermarkSize]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fsWatermark{}, fmt.Errorf("whycache: filestore: read %s: %w", f.Name(), err)
	}
	w, _ := fsDecodeWatermark(buf[:n])
	return w, nil
}

// fsWatermarkWriter is the writer's handle on the watermark file. It is
// used only under the writer lock.
type fsWatermarkWriter struct {
	f   *os.File
	seq uint64 // the sequence number of the last slot written or read
}

// open opens (creating) the watermark file of dir and returns the current
// watermark.
func (ww *fsWatermarkWriter) open(dir string, mode os.FileMode) (fsWatermark, error) {
	ww.close()
	f, err := os.OpenFile(filepath.Join(dir, fsWatermarkName), os.O_RDWR|os.O_CREATE, mode)
	if err != nil {
		return fsWatermark{}, fmt.Errorf("whycache: filestore: %w", err)
	}
	w, err := fsReadWatermarkFile(f)
	if err != nil {
		f.Close()
		return fsWatermark{}, err
	}
	ww.f, ww.seq = f, w.seq
	return w, nil
}

// write records that segment name is acknowledged up to ack, by a commit
// at time now under the MANIFEST of generation generation, in the slot
// after the last one written.
func (ww *fsWatermarkWriter) write(generation uint64, name string, ack fsAck, now time.Time) error {
	first, gen, _ := fsParseSegmentName(name)
	ww.seq++
	w := fsWatermark{seq: ww.seq, generation: generation, segFirst: first, segGen: gen, ack: ack, time: now.UnixNano()}
	if _, err := ww.f.WriteAt(w.encode(), int64(ww.seq%2)*fsWatermarkStride); err != nil {
		return fmt.Errorf("whycache: filestore: write %s: %w", ww.f.Name(), err)
	}
	return nil
}

// close closes the file, if open.
func (ww *fsWatermarkWriter) close() error {
	if ww.f == nil {
		return nil
	}
	err := ww.f.Close()
	ww.f = nil
	return err
}

// fsWatermarkReader is a reader's handle on the watermark file, kept open
// so that reading it costs one pread. It is reopened in each MANIFEST
// epoch (a restored directory has another watermark file), and looked for
// again while the file is missing.
type fsWatermarkReader struct {
	f     *os.File
	epoch uint64
}

// read returns the watermark of dir as of MANIFEST epoch epoch (the zero
// fsWatermark when there is none).
func (r *fsWatermarkReader) read(dir string, epoch uint64) (fsWatermark, error) {
	if r.f != nil && r.epoch != epoch {
		r.close()
	}
	if r.f == nil {
		f, err := os.Open(filepath.Join(dir, fsWatermarkName))
		if errors.Is(err, os.ErrNotExist) {
			return fsWatermark{}, nil
		}
		if err != nil {
			return fsWatermark{}, fmt.Errorf("whycache: filestore: %w", err)
		}
		r.f, r.epoch = f, epoch
	}
	return fsReadWatermarkFile(r.f)
}

// close closes the file, if open.
func (r *fsWatermarkReader) close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
