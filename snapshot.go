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
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// Snapshot format, version 3. Integers are little-endian whatever the
// machine, so a snapshot moves between architectures:
//
//	"WHYSNAP" 0x03          magic and version
//	[16]byte                log identity
//	u64                     update id
//	u64                     nonce of the commit of the update id (0 if unknown)
//	u64                     item count, so a loader can size its table (at least
//	                        the items that follow: expired items are left out)
//	items, ascending keys:  u32 key length (> 0), bit 31 = expires | u32 value length |
//	                        u64 record id | [u64 expiry, if it expires] | key | value
//	u32 0                   end marker
//	u64                     item count
//	u64                     xxhash64 of every byte before it
//
// The expiry is in nanoseconds since the Unix epoch. A snapshot leaves out
// the items expired when it is written, and a load drops those expired
// when it reads them. Version 2 is the same without expiring items, and
// version 1 the same as 2 without the nonce; both still load (a version 1
// position is then checked by id only).
const (
	snapshotMagic     = "WHYSNAP"
	snapshotVersion   = 3
	snapExpires       = 1 << 31 // flag in an item's key length
	snapshotHeaderV1  = 8 + 16 + 8 + 8
	snapshotHeader    = snapshotHeaderV1 + 8
	snapItemHeader    = 16
	loadBatchItems    = 4096
	maxSnapValueLen   = prefixtree.MaxValueSize
	snapFirstReserve  = 1 << 16 // keys a load sizes its table for before any item is read
	snapMinItemLength = snapItemHeader + 1
)

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
		tmp := c.tempStateName("export")
		if err := t.File().CopyToIn(c.dir, tmp, 0o600); err != nil {
			return err
		}
		c.lockTemp(tmp)
		defer c.removeTemp(tmp)
		cp, err := c.openState(tmp, prefixtree.Options{NoCreate: true, ReadOnly: false})
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
// its position up to the latest. Records applied locally are all at or
// below the latest id read after the copy was taken, so the copy then
// equals the log replayed to its new update id.
func (c *Instance) catchUpCopy(ctx context.Context, cp *prefixtree.Tree) error {
	_, err := c.tail(ctx, cp, false)
	var rb *rebuildError
	if errors.As(err, &rb) {
		return fmt.Errorf("whycache: snapshot: the state cannot follow the log (%w): run Update first", bare(rb.cause))
	}
	return withContext("snapshot: catch up with the log", err)
}

func writeSnapshotOf(t *prefixtree.Tree, w io.Writer, progress func(uint64)) (uint64, error) {
	m, err := readState(t)
	if err != nil {
		return 0, wrapStateErr(err)
	}
	h := xxhash.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	id := m.updateID
	nonce := uint64(0)
	if m.pos.ID == id {
		nonce = m.pos.Nonce
	}
	hdr := make([]byte, 0, snapshotHeader)
	hdr = append(hdr, snapshotMagic...)
	hdr = append(hdr, snapshotVersion)
	hdr = append(hdr, m.logID[:]...)
	hdr = binary.LittleEndian.AppendUint64(hdr, id)
	hdr = binary.LittleEndian.AppendUint64(hdr, nonce)
	hdr = binary.LittleEndian.AppendUint64(hdr, t.Len())
	bw.Write(hdr)
	var count uint64
	var ih [snapItemHeader]byte
	cur := t.Cursor()
	for cur.Next() {
		k, v, rid, exp := cur.Key(), cur.Value(), cur.ID(), cur.Expires()
		kw := uint32(len(k))
		if exp != 0 {
			kw |= snapExpires
		}
		binary.LittleEndian.PutUint32(ih[:], kw)
		binary.LittleEndian.PutUint32(ih[4:], uint32(len(v)))
		binary.LittleEndian.PutUint64(ih[8:], rid)
		bw.Write(ih[:])
		if exp != 0 {
			var e [8]byte
			binary.LittleEndian.PutUint64(e[:], uint64(exp))
			bw.Write(e[:])
		}
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

// SnapshotLoadOptions configure LoadSnapshotOptions.
type SnapshotLoadOptions struct {
	// Force loads a snapshot older than the live state even when the
	// loaded state cannot be caught up with the log first: keys may then
	// move back to the snapshot's values until the next Update.
	Force bool
}

// LoadSnapshot verifies a snapshot written by WriteSnapshot and makes it
// the state: it builds a new state file beside the current one and, only
// if the whole snapshot checks out, swaps it in atomically. Processes
// already using the old state move to the new one on their own. Update then
// tails the log from the snapshot's update id.
//
// No key moves back: when the live state is ahead of the snapshot, the
// loaded state is first caught up with the log, to at least the live
// state's position (the last part while the live state's writer lock is
// held), and a snapshot that cannot be caught up (the store is
// unreachable, the log was compacted past it or no longer holds its
// history) is refused with ErrSnapshotBehind.
//
// Errors: ErrCorrupt for a truncated, damaged or foreign snapshot (the old
// state stays in use), ErrLogMismatch for a snapshot of another log,
// ErrSnapshotBehind, and the store's errors.
func (c *Instance) LoadSnapshot(ctx context.Context, r io.Reader) error {
	return c.LoadSnapshotOptions(ctx, r, SnapshotLoadOptions{})
}

// LoadSnapshotOptions is LoadSnapshot with options.
func (c *Instance) LoadSnapshotOptions(ctx context.Context, r io.Reader, opts SnapshotLoadOptions) error {
	info, err := c.store.Info(ctx)
	if err != nil {
		return withContext("snapshot: read log info", wrapStateErr(err))
	}
	if err := c.lockUpdate(ctx); err != nil {
		return err
	}
	defer c.updateMu.Unlock()
	t, tmp, err := c.newTempState("load")
	if err != nil {
		return err
	}
	fail := func(err error) error {
		t.Close()
		c.removeTemp(tmp)
		return err
	}
	if err := loadSnapshotInto(ctx, t, r, info.ID); err != nil {
		return fail(err)
	}
	loaded, err := readState(t)
	if err != nil {
		return fail(wrapStateErr(err))
	}
	// Catch up before taking any lock when the live state is ahead, so
	// that the part under the live state's writer lock is short.
	if live, err := c.liveState(); err == nil && live.filled && live.logID == loaded.logID && live.pos.ID > loaded.pos.ID {
		if _, err := c.tail(ctx, t, false); err != nil && !opts.Force {
			return fail(fmt.Errorf("%w: it is at id %d, the live state at %d, and catching it up failed: %w (load it anyway with Force, \"snapshot import --force\")",
				ErrSnapshotBehind, loaded.updateID, live.pos.ID, bare(err)))
		}
	}
	err = c.swapIn(ctx, t, tmp, nil, func(live *stateMeta) error {
		if live == nil || !live.filled || live.logID != loaded.logID {
			return nil
		}
		cur, err := readState(t)
		if err != nil || cur.pos.ID >= live.pos.ID || opts.Force {
			return wrapStateErr(err)
		}
		if _, err := c.tail(ctx, t, false); err != nil {
			return fmt.Errorf("%w: catching it up to the live state's id %d failed: %w", ErrSnapshotBehind, live.pos.ID, bare(err))
		}
		if cur, err = readState(t); err != nil {
			return wrapStateErr(err)
		}
		if cur.pos.ID < live.pos.ID {
			return fmt.Errorf("%w: caught up to id %d, the live state holds %d", ErrSnapshotBehind, cur.pos.ID, live.pos.ID)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// liveState reads the meta words of the state in use.
func (c *Instance) liveState() (stateMeta, error) {
	var m stateMeta
	err := c.withTree(func(t *prefixtree.Tree) error {
		var err error
		m, err = readState(t)
		return err
	})
	return m, err
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
	if err := s.full(hdr[:snapshotHeaderV1]); err != nil {
		return err
	}
	if string(hdr[:7]) != snapshotMagic {
		return fmt.Errorf("%w: not a whycache snapshot", ErrCorrupt)
	}
	var nonce uint64
	version := hdr[7]
	switch version {
	case 1:
	case 2, snapshotVersion:
		if err := s.full(hdr[snapshotHeaderV1:]); err != nil {
			return err
		}
		nonce = binary.LittleEndian.Uint64(hdr[32:])
		copy(hdr[32:], hdr[40:48]) // the count, where version 1 has it
	default:
		return fmt.Errorf("%w: unsupported snapshot version %d", ErrCorrupt, hdr[7])
	}
	var logID logstore.LogID
	copy(logID[:], hdr[8:24])
	if logID != want {
		return fmt.Errorf("%w: the snapshot is of log %x, the store holds log %x", ErrLogMismatch, logID, want)
	}
	id := binary.LittleEndian.Uint64(hdr[24:])
	announced := binary.LittleEndian.Uint64(hdr[32:])
	var count uint64
	var ih [snapItemHeader]byte
	var buf []byte
	var prev []byte
	b, err := t.BeginContext(ctx)
	if err != nil {
		return err
	}
	// Size the hash table for the announced count, but only as far as the
	// items read so far make it credible (the count is not verified until
	// the end): a hostile header costs what its input really holds.
	reserved := min(announced, snapFirstReserve)
	if err := b.Reserve(int(reserved)); err != nil {
		b.Rollback()
		return wrapStateErr(err)
	}
	defer func() {
		if b != nil {
			b.Rollback()
		}
	}()
	inBatch := 0
	now := time.Now().UnixNano()
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
		var exp int64
		if kl&snapExpires != 0 && version == snapshotVersion {
			kl &^= snapExpires
			var e [8]byte
			if err := s.full(e[:]); err != nil {
				return err
			}
			if exp = int64(binary.LittleEndian.Uint64(e[:])); exp <= 0 {
				return fmt.Errorf("%w: snapshot item expiry %d", ErrCorrupt, exp)
			}
		}
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
		count++
		if exp != 0 && exp <= now {
			continue // expired since the snapshot was written
		}
		if _, err := b.PutExpiring(key, buf[kl:], rid, exp); err != nil {
			return wrapStateErr(err)
		}
		if count == reserved && announced > reserved {
			reserved = min(announced, 4*reserved)
			if err := b.Reserve(int(reserved - count)); err != nil {
				return wrapStateErr(err)
			}
		}
		if inBatch++; inBatch >= loadBatchItems {
			if err := b.Commit(); err != nil {
				b = nil
				return wrapStateErr(err)
			}
			if err := ctx.Err(); err != nil {
				b = nil
				return err
			}
			if b, err = t.BeginContext(ctx); err != nil {
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
	if binary.LittleEndian.Uint64(ct[:]) != count || count > announced || (version < snapshotVersion && count != announced) || binary.LittleEndian.Uint64(st[:]) != sum {
		return fmt.Errorf("%w: snapshot checksum or count mismatch", ErrCorrupt)
	}
	m := stateMeta{updateID: id, pos: logstore.Position{ID: id, Nonce: nonce}, logID: logID, filled: true}
	if err := m.writeTo(b, stateMetaLocked(t)); err != nil {
		return err
	}
	err = b.Commit()
	b = nil
	return wrapStateErr(err)
}
