package whycache

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// Snapshot format, version 1. Integers are little-endian whatever the
// machine, so a snapshot moves between architectures:
//
//	"WHYSNAP" 0x01          magic and version
//	[16]byte                log identity
//	u64                     update id
//	u64                     item count (so a loader can size its table)
//	items, ascending keys:  u32 key length (> 0) | u32 value length | u64 record id | key | value
//	u32 0                   end marker
//	u64                     item count
//	u64                     xxhash64 of every byte before it
const (
	snapshotMagic   = "WHYSNAP\x01"
	snapshotHeader  = 8 + 16 + 8 + 8
	snapItemHeader  = 16
	loadBatchItems  = 4096
	maxSnapValueLen = prefixtree.MaxValueSize
	maxSnapReserve  = 16 << 20 // keys the loader sizes its table for ahead, at most
)

// ErrLogMismatch is returned by LoadSnapshot for a snapshot of another log
// than the instance's store holds.
var ErrLogMismatch = errors.New("whycache: snapshot is of another log")

// SnapshotOptions configure WriteSnapshotOptions.
type SnapshotOptions struct {
	// Gzip compresses the snapshot stream (LoadSnapshot recognizes it).
	Gzip bool
	// Progress, if set, is called from time to time with the number of
	// keys written so far.
	Progress func(keys uint64)
}

// WriteSnapshot writes a consistent, checksummed image of the state to w
// and returns its update id: the snapshot equals the log replayed up to
// that id, and loading it then applying the later records gives the same
// state as a full replay. It copies the state file under its writer lock
// (writers wait a few milliseconds per 100 MB; readers never do), brings
// the private copy up to the latest record of the log, and streams it, so
// other processes keep reading and writing throughout. Errors:
// ErrInvalidState for a state never filled, the store's errors, and I/O
// errors of w.
func (c *Instance) WriteSnapshot(w io.Writer) (uint64, error) {
	return c.WriteSnapshotOptions(context.Background(), w, SnapshotOptions{})
}

// WriteSnapshotOptions is WriteSnapshot with a context and options.
func (c *Instance) WriteSnapshotOptions(ctx context.Context, w io.Writer, opts SnapshotOptions) (uint64, error) {
	var id uint64
	err := c.withTree(func(t *prefixtree.Tree) error {
		if !filled(t) {
			return ErrInvalidState
		}
		tmp := c.tempStatePath("export")
		if err := t.File().CopyTo(tmp, 0o600); err != nil {
			return err
		}
		lockTemp(tmp)
		defer removeTemp(tmp)
		cp, err := prefixtree.Open(tmp, prefixtree.Options{NoCreate: true})
		if err != nil {
			return err
		}
		defer cp.Close()
		if err := c.catchUpCopy(ctx, cp); err != nil {
			return err
		}
		if opts.Gzip {
			zw := gzip.NewWriter(w)
			if id, err = writeSnapshotOf(cp, zw, opts.Progress); err != nil {
				return err
			}
			return zw.Close()
		}
		id, err = writeSnapshotOf(cp, w, opts.Progress)
		return err
	})
	return id, err
}

// catchUpCopy applies to a private copy of the state every record after
// its update id up to the latest. Records applied locally out of order are
// all at or below the latest id read after the copy was taken, so the copy
// then equals the log replayed to its new update id.
func (c *Instance) catchUpCopy(ctx context.Context, cp *prefixtree.Tree) error {
	info, err := c.refreshLogInfo(ctx)
	if err != nil {
		return err
	}
	start := cp.Meta(metaUpdateID)
	if stateLogID(cp) != info.ID || start < info.Horizon {
		return fmt.Errorf("whycache: snapshot: the state is behind the log's compaction horizon or of another log; run Update first")
	}
	_, err = c.tail(ctx, cp, start, info.ID)
	if errors.Is(err, errRebuild) {
		return fmt.Errorf("whycache: snapshot: the log was compacted or reset during the export; try again")
	}
	return err
}

func writeSnapshotOf(t *prefixtree.Tree, w io.Writer, progress func(uint64)) (uint64, error) {
	h := xxhash.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	id := t.Meta(metaUpdateID)
	logID := stateLogID(t)
	hdr := make([]byte, 0, snapshotHeader)
	hdr = append(hdr, snapshotMagic...)
	hdr = append(hdr, logID[:]...)
	hdr = binary.LittleEndian.AppendUint64(hdr, id)
	hdr = binary.LittleEndian.AppendUint64(hdr, t.Len())
	bw.Write(hdr)
	var count uint64
	var ih [snapItemHeader]byte
	cur := t.Cursor()
	for cur.Next() {
		k, v, rid := cur.Key(), cur.Value(), cur.ID()
		binary.LittleEndian.PutUint32(ih[:], uint32(len(k)))
		binary.LittleEndian.PutUint32(ih[4:], uint32(len(v)))
		binary.LittleEndian.PutUint64(ih[8:], rid)
		bw.Write(ih[:])
		bw.Write(k)
		if _, err := bw.Write(v); err != nil {
			return 0, fmt.Errorf("whycache: write snapshot: %w", err)
		}
		count++
		if progress != nil && count%65536 == 0 {
			progress(count)
		}
	}
	if err := cur.Err(); err != nil {
		return 0, wrapStateErr(err)
	}
	var tail [12]byte
	binary.LittleEndian.PutUint64(tail[4:], count)
	bw.Write(tail[:])
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("whycache: write snapshot: %w", err)
	}
	var sum [8]byte
	binary.LittleEndian.PutUint64(sum[:], h.Sum64())
	if _, err := w.Write(sum[:]); err != nil {
		return 0, fmt.Errorf("whycache: write snapshot: %w", err)
	}
	return id, nil
}

// LoadSnapshot verifies a snapshot written by WriteSnapshot and makes it
// the state: it builds a new state file beside the current one and, only
// if the whole snapshot checks out, swaps it in atomically. Processes
// already using the old state move to the new one on their own. Update then
// tails the log from the snapshot's update id. Errors: ErrCorrupt for a
// truncated, damaged or foreign snapshot (the old state stays in use),
// ErrLogMismatch for a snapshot of another log, and the store's errors.
func (c *Instance) LoadSnapshot(ctx context.Context, r io.Reader) error {
	info, err := c.logInfo(ctx)
	if err != nil {
		return err
	}
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	t, tmp, err := c.newTempState("load")
	if err != nil {
		return err
	}
	if err := loadSnapshotInto(ctx, t, r, info.ID); err != nil {
		t.Close()
		removeTemp(tmp)
		return err
	}
	if err := c.swapIn(t, tmp, nil); err != nil {
		t.Close()
		removeTemp(tmp)
		return err
	}
	return nil
}

// snapReader reads a snapshot stream, hashing everything it reads.
type snapReader struct {
	r *bufio.Reader
	h hash.Hash64
}

func (s *snapReader) full(b []byte) error {
	if _, err := io.ReadFull(s.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: snapshot truncated", ErrCorrupt)
		}
		var flateErr flate.CorruptInputError
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.As(err, &flateErr) {
			return fmt.Errorf("%w: snapshot: %w", ErrCorrupt, err)
		}
		return fmt.Errorf("whycache: read snapshot: %w", err)
	}
	s.h.Write(b)
	return nil
}

func loadSnapshotInto(ctx context.Context, t *prefixtree.Tree, r io.Reader, want logstore.LogID) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%w: snapshot: %w", ErrCorrupt, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	s := &snapReader{r: br, h: xxhash.New()}
	hdr := make([]byte, snapshotHeader)
	if err := s.full(hdr); err != nil {
		return err
	}
	if string(hdr[:7]) != snapshotMagic[:7] {
		return fmt.Errorf("%w: not a whycache snapshot", ErrCorrupt)
	}
	if hdr[7] != snapshotMagic[7] {
		return fmt.Errorf("%w: unsupported snapshot version %d", ErrCorrupt, hdr[7])
	}
	var logID logstore.LogID
	copy(logID[:], hdr[8:24])
	if logID != want {
		return fmt.Errorf("%w: snapshot log %x, store log %x", ErrLogMismatch, logID, want)
	}
	id := binary.LittleEndian.Uint64(hdr[24:])
	announced := binary.LittleEndian.Uint64(hdr[32:])
	var count uint64
	var ih [snapItemHeader]byte
	var buf []byte
	var prev []byte
	b, err := t.Begin()
	if err != nil {
		return err
	}
	// Size the hash table once (bounded: the count is not verified yet).
	if err := b.Reserve(int(min(announced, maxSnapReserve))); err != nil {
		b.Rollback()
		return wrapStateErr(err)
	}
	defer func() {
		if b != nil {
			b.Rollback()
		}
	}()
	inBatch := 0
	for {
		if err := s.full(ih[:4]); err != nil {
			return err
		}
		kl := binary.LittleEndian.Uint32(ih[:4])
		if kl == 0 {
			break
		}
		if err := s.full(ih[4:]); err != nil {
			return err
		}
		vl := binary.LittleEndian.Uint32(ih[4:])
		rid := binary.LittleEndian.Uint64(ih[8:])
		if kl > prefixtree.MaxKeySize || vl > maxSnapValueLen {
			return fmt.Errorf("%w: snapshot item of %d+%d bytes", ErrCorrupt, kl, vl)
		}
		need := int(kl) + int(vl)
		if cap(buf) < need {
			buf = make([]byte, need)
		}
		buf = buf[:need]
		if err := s.full(buf); err != nil {
			return err
		}
		key := buf[:kl]
		if prev != nil && string(prev) >= string(key) {
			return fmt.Errorf("%w: snapshot keys out of order", ErrCorrupt)
		}
		prev = append(prev[:0], key...)
		if _, err := b.Put(key, buf[kl:], rid); err != nil {
			return wrapStateErr(err)
		}
		count++
		if inBatch++; inBatch >= loadBatchItems {
			if err := b.Commit(); err != nil {
				b = nil
				return wrapStateErr(err)
			}
			if err := ctx.Err(); err != nil {
				b = nil
				return err
			}
			if b, err = t.Begin(); err != nil {
				return err
			}
			inBatch = 0
		}
	}
	var ct [8]byte
	if err := s.full(ct[:]); err != nil {
		return err
	}
	sum := s.h.Sum64()
	var st [8]byte
	if _, err := io.ReadFull(s.r, st[:]); err != nil {
		return fmt.Errorf("%w: snapshot truncated", ErrCorrupt)
	}
	if binary.LittleEndian.Uint64(ct[:]) != count || count != announced || binary.LittleEndian.Uint64(st[:]) != sum {
		return fmt.Errorf("%w: snapshot checksum or count mismatch", ErrCorrupt)
	}
	if err := setStateLogID(b, logID); err != nil {
		return err
	}
	if err := b.SetMeta(metaUpdateID, id); err != nil {
		return err
	}
	if err := b.SetMeta(metaFilled, 1); err != nil {
		return err
	}
	err = b.Commit()
	b = nil
	return wrapStateErr(err)
}
