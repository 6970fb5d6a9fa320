package filestore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/whycache/whycache/logstore"
)

// Compact passes every record with id <= limit to fn in id order and
// replaces or drops it as fn says; see logstore.Store and the package
// documentation. When it drops the last frame of a batch that ends at or above the
// horizon, a mark keeps the batch's position; marks below the horizon are
// dropped. fn runs without any lock held, so it may call any method of the
// store (or of another handle on the log) other than Close. Each group of
// segments is replaced atomically for readers. A replacement larger than
// Limits().MaxRecordSize fails with an error wrapping logstore.ErrTooLarge
// and leaves its group as it was; groups replaced before stay replaced.
// Damage in a segment read stops the call with an error wrapping
// logstore.ErrCorrupt and leaves that group as it was. A Reset during the
// call stops it with an error. Waits for the writer lock end with ctx's
// error when ctx is done.
func (s *Store) Compact(ctx context.Context, limit, horizon uint64, fn logstore.CompactFunc) (logstore.CompactStats, error) {
	var total logstore.CompactStats
	if err := s.enter(ctx); err != nil {
		return total, err
	}
	defer s.leave()
	m, err := s.manifest()
	if err != nil {
		return total, err
	}
	if horizon > m.Horizon {
		err := s.withWriterLock(ctx, func() error {
			m, err := s.manifest()
			if err != nil || horizon <= m.Horizon {
				return err
			}
			nm := m.next()
			nm.Horizon = horizon
			return s.publishLocked(nm)
		})
		if err != nil {
			return total, err
		}
	}
	logID := m.id
	next := uint64(1) // the lowest id not compacted yet
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("filestore: compact: %w", err)
		}
		m, err := s.manifest()
		if err != nil {
			return total, err
		}
		if m.id != logID {
			return total, fmt.Errorf("filestore: compact: the log was reset meanwhile")
		}
		i, j, err := s.compactionGroup(m, next, limit)
		if errors.Is(err, errSegmentGone) {
			continue
		}
		if err != nil {
			return total, err
		}
		if i < 0 {
			break
		}
		g := &compactGroup{segs: m.Segments[i : j+1], logID: logID}
		err = s.rewriteGroup(ctx, g, m, i, limit, fn)
		if err == nil {
			err = s.withWriterLock(ctx, func() error { return s.installGroupLocked(g) })
		}
		g.discard()
		if errors.Is(err, errSegmentGone) {
			continue // the MANIFEST changed under the group: redo it
		}
		if err != nil {
			return total, err
		}
		total.RecordsBefore += g.stats.RecordsBefore
		total.RecordsAfter += g.stats.RecordsAfter
		total.BytesBefore += g.stats.BytesBefore
		total.BytesAfter += g.stats.BytesAfter
		if j+1 == len(m.Segments) {
			break
		}
		next = m.Segments[j+1].First
	}
	return total, s.withWriterLock(ctx, func() error { return s.removeOrphansLocked(false) })
}

// compactionGroup picks the next run of segments to rewrite: from the one
// holding next, adding following segments whose first id is <= limit while
// their files total at most SegmentSize. i is -1 when nothing is left.
func (s *Store) compactionGroup(m *manifest, next, limit uint64) (i, j int, err error) {
	if len(m.Segments) == 0 {
		return -1, -1, nil
	}
	i = m.segmentFor(next)
	if m.Segments[i].First > limit {
		return -1, -1, nil // every record from next on is above limit
	}
	var size int64
	for j = i; j < len(m.Segments); j++ {
		if j > i && m.Segments[j].First > limit {
			break
		}
		fi, err := os.Stat(s.path(m.Segments[j].Name))
		if errors.Is(err, os.ErrNotExist) {
			return 0, 0, fmt.Errorf("%w: %s", errSegmentGone, m.Segments[j].Name)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("filestore: %w", err)
		}
		if j > i && size+fi.Size() > s.opts.SegmentSize {
			break
		}
		size += fi.Size()
	}
	return i, j - 1, nil
}

// compactGroup is a run of segments being rewritten into one file.
type compactGroup struct {
	segs  []segment
	logID logstore.LogID
	stats logstore.CompactStats
	// out is the new file (a flocked temporary until installed), cw its
	// writer; changed reports whether it differs from the group.
	out     *os.File
	cw      compactWriter
	changed bool
	// last is where the scan of the group's last segment stopped; maxID is
	// the highest id seen in the group, kept or not.
	last  segPos
	maxID uint64
}

// discard closes the new file and removes it unless it was installed.
func (g *compactGroup) discard() {
	if g.out == nil {
		return
	}
	if strings.HasSuffix(g.out.Name(), ".tmp") {
		os.Remove(g.out.Name())
	}
	g.out.Close()
	g.out = nil
}

// rewriteGroup writes the group's new file, calling fn for records with id
// <= limit. The group is segments i.. of m. It takes no lock; the file is
// flocked so that an orphan sweep leaves it alone.
func (s *Store) rewriteGroup(ctx context.Context, g *compactGroup, m *manifest, i int, limit uint64, fn logstore.CompactFunc) error {
	out, err := os.CreateTemp(s.dir, "compact-*.tmp")
	if err != nil {
		return fmt.Errorf("filestore: compact: %w", err)
	}
	g.out = out
	if err := out.Chmod(s.opts.FileMode); err != nil {
		return fmt.Errorf("filestore: compact: %w", err)
	}
	if _, err := tryLockFile(out); err != nil {
		return err
	}
	g.changed = len(g.segs) > 1
	g.cw = compactWriter{w: bufio.NewWriterSize(out, 1<<20), horizon: m.Horizon}
	if err := g.cw.start(); err != nil {
		return err
	}
	sc := getScanner()
	defer putScanner(sc)
	for k, sg := range g.segs {
		f, err := s.openSegment(sg.Name)
		if err != nil {
			return err
		}
		err = s.rewriteSegment(ctx, sc, f, g, s.readCheck(m, i+k, nil), limit, fn)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := g.cw.w.Flush(); err != nil {
		return fmt.Errorf("filestore: compact: %w", err)
	}
	return nil
}

// rewriteSegment passes the complete batches of one segment through fn
// into the group's writer.
func (s *Store) rewriteSegment(ctx context.Context, sc *scanner, f *os.File, g *compactGroup, check scanCheck, limit uint64, fn logstore.CompactFunc) error {
	if err := sc.start(f, segPos{}, check); err != nil {
		return err
	}
	if sc.rd.format != format2 {
		g.changed = true // rewritten in the current format
	}
	cw := &g.cw
	var endKept bool // the frame of the current batch carrying its end was kept
	frame := func(fr batchFrame) error {
		g.maxID = max(g.maxID, fr.id)
		if fr.last {
			endKept = false
		}
		if fr.mark {
			return nil
		}
		if fr.id > limit {
			endKept = fr.last
			return cw.add(fr.id, fr.nonce, fr.contents)
		}
		g.stats.RecordsBefore++
		g.stats.BytesBefore += uint64(len(fr.contents))
		nc, keep, err := fn(fr.id, fr.contents)
		if err != nil {
			return err
		}
		if !keep {
			g.changed = true
			return nil
		}
		if len(nc) > s.opts.MaxRecordSize {
			return fmt.Errorf("filestore: compact: replacement of record %d has %d bytes, limit %d: %w",
				fr.id, len(nc), s.opts.MaxRecordSize, logstore.ErrTooLarge)
		}
		g.changed = g.changed || !bytes.Equal(nc, fr.contents)
		g.stats.RecordsAfter++
		g.stats.BytesAfter += uint64(len(nc))
		endKept = fr.last
		return cw.add(fr.id, fr.nonce, nc)
	}
	for n := 0; ; n++ {
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("filestore: compact: %w", err)
			}
		}
		b, ok, err := sc.nextBatch()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := sc.eachFrame(b, frame); err != nil {
			return err
		}
		markDropped, err := cw.endBatch(b.lastID, b.nonce, endKept)
		if err != nil {
			return err
		}
		g.changed = g.changed || markDropped
	}
	g.last = sc.pos()
	return nil
}

// compactWriter writes the frames a compaction keeps, holding back the
// last kept frame of a batch until the batch ends, so that it can carry the
// batch-end flag whichever frames were dropped, or be followed by a mark.
type compactWriter struct {
	w       *bufio.Writer
	horizon uint64 // batches ending below it lose their marks
	pending []byte // contents of the held-back frame
	id      uint64 // its id; 0 when none is held back
	nonce   uint64 // its nonce
	frame   []byte // encoding buffer
	frames  int    // frames written, marks included
	// end is the position just past the last batch written.
	end ackedEnd
}

// start writes the segment magic.
func (cw *compactWriter) start() error {
	if _, err := cw.w.WriteString(segMagic2); err != nil {
		return fmt.Errorf("filestore: compact: %w", err)
	}
	cw.end = ackedEnd{end: magicLen}
	return nil
}

// add queues a kept record of the current batch.
func (cw *compactWriter) add(id, nonce uint64, contents []byte) error {
	if err := cw.flush(false); err != nil {
		return err
	}
	cw.id, cw.nonce, cw.pending = id, nonce, append(cw.pending[:0], contents...)
	return nil
}

// endBatch ends the batch whose last id is lastID: endKept says whether
// its batch-end frame was kept (it is then the held-back frame). Otherwise
// a batch ending at or above the horizon gets a mark; one below it ends
// with its last kept frame, if any, and markDropped reports that a mark it
// had (or would have had) is gone.
func (cw *compactWriter) endBatch(lastID, nonce uint64, endKept bool) (markDropped bool, err error) {
	if endKept || lastID < cw.horizon {
		return !endKept, cw.flush(true)
	}
	if err := cw.flush(false); err != nil {
		return false, err
	}
	return false, cw.write(appendFrame(cw.frame[:0], lastID, nonce, true, true, nil), lastID, nonce, true)
}

// flush writes the held-back frame, if any.
func (cw *compactWriter) flush(last bool) error {
	if cw.id == 0 {
		return nil
	}
	id := cw.id
	cw.id = 0
	return cw.write(appendFrame(cw.frame[:0], id, cw.nonce, last, false, cw.pending), id, cw.nonce, last)
}

// write writes one encoded frame.
func (cw *compactWriter) write(frame []byte, id, nonce uint64, last bool) error {
	cw.frame = frame
	cw.frames++
	if _, err := cw.w.Write(frame); err != nil {
		return fmt.Errorf("filestore: compact: %w", err)
	}
	pos := cw.end.end + int64(len(frame))
	if last {
		cw.end = ackedEnd{end: pos, lastID: id, nonce: nonce}
	} else {
		cw.end.end = pos
	}
	return nil
}

// installGroupLocked replaces the group's segments by its new file, after
// copying batches appended to the last segment since it was read. It
// returns errSegmentGone when the MANIFEST no longer lists the group. The
// caller holds the writer lock.
func (s *Store) installGroupLocked(g *compactGroup) error {
	m, err := s.manifest()
	if err != nil {
		return err
	}
	if m.id != g.logID {
		return fmt.Errorf("filestore: compact: the log was reset meanwhile")
	}
	at := -1
	for i, sg := range m.Segments {
		if sg.Name == g.segs[0].Name {
			at = i
			break
		}
	}
	if at < 0 || at+len(g.segs) > len(m.Segments) || !sameSegments(m.Segments[at:at+len(g.segs)], g.segs) {
		return fmt.Errorf("%w: group of %s", errSegmentGone, g.segs[0].Name)
	}
	lastIdx := at + len(g.segs) - 1
	if err := s.copyAppendedLocked(g, m, lastIdx); err != nil {
		return err
	}
	if !g.changed {
		return nil
	}
	nm := m.next()
	var repl []segment
	if g.cw.frames > 0 {
		name := segmentName(g.segs[0].First, nm.Generation)
		if !s.opts.NoSync {
			if err := g.out.Sync(); err != nil {
				return fmt.Errorf("filestore: compact: %w", err)
			}
		}
		if err := renameSync(g.out.Name(), s.path(name), !s.opts.NoSync); err != nil {
			return err
		}
		e := g.cw.end
		repl = []segment{{Name: name, First: g.segs[0].First, Size: e.end, LastID: e.lastID, LastNonce: e.nonce}}
	}
	nm.Segments = append(append(nm.Segments[:at:at], repl...), m.Segments[lastIdx+1:]...)
	if g.maxID > 0 {
		nm.IDFloor = max(nm.IDFloor, g.maxID+1)
	}
	if err := s.publishLocked(nm); err != nil {
		if len(repl) > 0 {
			os.Remove(s.path(repl[0].Name))
		}
		return err
	}
	for _, sg := range g.segs {
		os.Remove(s.path(sg.Name))
	}
	return nil
}

// sameSegments reports whether a and b name the same segment files.
func sameSegments(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].First != b[i].First {
			return false
		}
	}
	return true
}

// copyAppendedLocked appends to the group's file the complete batches
// committed to its last segment (segment i of m) after rewriteGroup read
// it (only the tail segment grows), re-encoding format-1 frames. The
// caller holds the writer lock, so no more can come.
func (s *Store) copyAppendedLocked(g *compactGroup, m *manifest, i int) error {
	f, err := s.openSegment(m.Segments[i].Name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == g.last.off {
		return err
	}
	check := m.segCheck(i, ackedEnd{}, nil)
	if m.isTail(i) {
		wm, err := readWatermarkIn(s.dir)
		if err != nil {
			return err
		}
		check = m.segCheck(i, wm.forSegment(m, m.Segments[i].Name), nil)
	}
	var sc scanner
	if err := sc.start(f, g.last, check); err != nil {
		return err
	}
	if g.last.format == format2 {
		if err := sc.scanToEnd(); err != nil || sc.end == g.last.off {
			return err
		}
		if err := g.cw.w.Flush(); err != nil {
			return fmt.Errorf("filestore: compact: %w", err)
		}
		if _, err := g.out.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("filestore: compact: %w", err)
		}
		if _, err := io.Copy(g.out, io.NewSectionReader(f, g.last.off, sc.end-g.last.off)); err != nil {
			return fmt.Errorf("filestore: compact: %w", err)
		}
		g.cw.frames++ // at least one
		g.cw.end = ackedEnd{end: g.cw.end.end + sc.end - g.last.off, lastID: sc.lastID, nonce: sc.nonce}
	} else {
		for {
			b, ok, err := sc.nextBatch()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			err = sc.eachFrame(b, func(fr batchFrame) error {
				if fr.last {
					return g.cw.write(appendFrame(g.cw.frame[:0], fr.id, fr.nonce, true, false, fr.contents), fr.id, fr.nonce, true)
				}
				return g.cw.write(appendFrame(g.cw.frame[:0], fr.id, fr.nonce, false, false, fr.contents), fr.id, fr.nonce, false)
			})
			if err != nil {
				return err
			}
		}
		if sc.end == g.last.off {
			return nil
		}
		if err := g.cw.w.Flush(); err != nil {
			return fmt.Errorf("filestore: compact: %w", err)
		}
	}
	g.changed = true
	g.maxID = max(g.maxID, sc.lastID)
	return nil
}

// Reset deletes every record and gives the log a new identity; ids go on
// above every id assigned before (see LatestUpdateID). It also works on a
// log whose tail segment is damaged, the way out of ErrCorrupt; the ids
// then skip ahead by a bound taken from the segment's size.
func (s *Store) Reset(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	return s.withWriterLock(ctx, func() error {
		m, err := s.manifest()
		if err != nil {
			return err
		}
		floor, err := s.idBoundLocked(m)
		if err != nil {
			return err
		}
		nm, err := newManifest(floor, m.Generation+1)
		if err != nil {
			return err
		}
		s.w.close()
		if err := s.publishLocked(nm); err != nil {
			return err
		}
		return s.removeOrphansLocked(true)
	})
}

// idBoundLocked returns an id above every id assigned in the log: the next
// id a Commit would take or, when the tail segment cannot be read to its
// end, a bound from its size (frames appended to a segment since its roll
// or rewrite, which set the id floor, take consecutive ids from the floor,
// and each frame has at least the format's minimum size), and above the
// ids the watermark and segment files the MANIFEST does not list (from
// the same bound) show. The caller holds the writer lock.
func (s *Store) idBoundLocked(m *manifest) (uint64, error) {
	bound := m.IDFloor
	if n := len(m.Segments); n > 0 {
		if err := s.syncWriterLocked(m); err == nil {
			bound = max(bound, s.w.lastID+1)
		} else {
			fi, err := os.Stat(s.path(m.Segments[n-1].Name))
			if err != nil {
				return 0, fmt.Errorf("filestore: reset: %w", err)
			}
			bound = max(bound, m.IDFloor+uint64(fi.Size())/uint64(format1.minFrame()))
		}
	}
	if wm, err := readWatermarkIn(s.dir); err == nil && wm.seq != 0 {
		bound = max(bound, wm.ack.lastID+1)
	}
	l, err := listDir(s.dir)
	if err != nil {
		return 0, err
	}
	listed := make(map[string]bool, len(m.Segments))
	for _, sg := range m.Segments {
		listed[sg.Name] = true
	}
	for _, name := range l.segments {
		if listed[name] {
			continue
		}
		first, _, _ := parseSegmentName(name)
		if fi, err := os.Stat(s.path(name)); err == nil {
			bound = max(bound, first+uint64(fi.Size())/uint64(format1.minFrame()))
		}
	}
	return bound, nil
}

// removeOrphansLocked removes the segment files the MANIFEST does not
// list that the store's own interrupted operations left (see classify),
// and temporary files nobody holds. Segment files from beyond the
// MANIFEST's history are left in place and reported as corruption, unless
// all is set (a Reset, which deletes every record, removes them too). The
// caller holds the writer lock.
func (s *Store) removeOrphansLocked(all bool) error {
	m, err := s.manifest()
	if err != nil {
		return err
	}
	l, err := listDir(s.dir)
	if err != nil {
		return err
	}
	orphans, beyond, err := classify(s.dir, m, l.segments)
	if err != nil {
		return err
	}
	if all {
		orphans, beyond = append(orphans, beyond...), nil
	}
	for _, name := range orphans {
		os.Remove(s.path(name))
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			s.removeUnheldTemp(e.Name())
		}
	}
	if len(beyond) > 0 {
		return checkDir(s.dir, m)
	}
	return nil
}

// removeUnheldTemp removes a temporary file unless a live compaction holds
// its flock.
func (s *Store) removeUnheldTemp(name string) {
	f, err := os.Open(s.path(name))
	if err != nil {
		return
	}
	defer f.Close()
	if ok, err := tryLockFile(f); ok && err == nil {
		os.Remove(s.path(name))
	}
}
