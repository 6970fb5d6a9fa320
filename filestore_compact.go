package whycache

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
// replaces or drops it as fn says; see logstore.Store and the FileStore
// doc. fn runs without any lock held, so it may call any method of the
// store (or of another handle on the log) other than Close. Each group of
// segments is replaced atomically for readers. A replacement larger than
// Limits().MaxRecordSize fails with an error wrapping logstore.ErrTooLarge
// and leaves its group as it was; groups replaced before stay replaced. A
// Reset during the call stops it with an error.
func (s *FileStore) Compact(ctx context.Context, limit, horizon uint64, fn logstore.CompactFunc) (logstore.CompactStats, error) {
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
		err := s.withWriterLock(func() error {
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
			return total, fmt.Errorf("whycache: filestore: compact: %w", err)
		}
		m, err := s.manifest()
		if err != nil {
			return total, err
		}
		if m.id != logID {
			return total, fmt.Errorf("whycache: filestore: compact: the log was reset meanwhile")
		}
		i, j, err := s.compactionGroup(m, next, limit)
		if errors.Is(err, errFsSegmentGone) {
			continue
		}
		if err != nil {
			return total, err
		}
		if i < 0 {
			break
		}
		g := &fsGroup{segs: m.Segments[i : j+1], logID: logID}
		err = s.rewriteGroup(ctx, g, limit, fn)
		if err == nil {
			err = s.withWriterLock(func() error { return s.installGroupLocked(g) })
		}
		g.discard()
		if errors.Is(err, errFsSegmentGone) {
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
	return total, s.withWriterLock(s.removeOrphansLocked)
}

// compactionGroup picks the next run of segments to rewrite: from the one
// holding next, adding following segments whose first id is <= limit while
// their files total at most SegmentSize. i is -1 when nothing is left.
func (s *FileStore) compactionGroup(m *fsManifest, next, limit uint64) (i, j int, err error) {
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
			return 0, 0, fmt.Errorf("%w: %s", errFsSegmentGone, m.Segments[j].Name)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("whycache: filestore: %w", err)
		}
		if j > i && size+fi.Size() > s.opts.SegmentSize {
			break
		}
		size += fi.Size()
	}
	return i, j - 1, nil
}

// fsGroup is a run of segments being rewritten into one file.
type fsGroup struct {
	segs  []fsSegment
	logID logstore.LogID
	stats logstore.CompactStats
	// out is the new file (a flocked temporary until installed); kept
	// reports whether it holds any frame, changed whether it differs from
	// the group.
	out           *os.File
	kept, changed bool
	// end and lastID are where the scan of the group's last segment
	// stopped; maxID is the highest id seen in the group, kept or not.
	end           int64
	lastID, maxID uint64
}

// discard closes the new file and removes it unless it was installed.
func (g *fsGroup) discard() {
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
// <= limit. It takes no lock; the file is flocked so that an orphan sweep
// leaves it alone.
func (s *FileStore) rewriteGroup(ctx context.Context, g *fsGroup, limit uint64, fn logstore.CompactFunc) error {
	out, err := os.CreateTemp(s.dir, "compact-*.tmp")
	if err != nil {
		return fmt.Errorf("whycache: filestore: compact: %w", err)
	}
	g.out = out
	if err := out.Chmod(s.opts.FileMode); err != nil {
		return fmt.Errorf("whycache: filestore: compact: %w", err)
	}
	if _, err := fsTryLockFile(out); err != nil {
		return err
	}
	g.changed = len(g.segs) > 1
	cw := fsCompactWriter{w: bufio.NewWriterSize(out, 1<<20)}
	cw.w.WriteString(fsSegMagic)
	sc := fsScannerPool.Get().(*fsScanner)
	defer fsPutScanner(sc)
	for _, sg := range g.segs {
		f, err := s.openSegment(sg.Name)
		if err != nil {
			return err
		}
		err = s.rewriteSegment(ctx, sc, f, g, &cw, limit, fn)
		f.Close()
		if err != nil {
			return err
		}
	}
	g.kept = cw.frames > 0
	if err := cw.w.Flush(); err != nil {
		return fmt.Errorf("whycache: filestore: compact: %w", err)
	}
	return nil
}

// rewriteSegment passes the complete batches of one segment through fn
// into cw.
func (s *FileStore) rewriteSegment(ctx context.Context, sc *fsScanner, f *os.File, g *fsGroup, cw *fsCompactWriter, limit uint64, fn logstore.CompactFunc) error {
	if err := sc.start(f, 0, 0); err != nil {
		return err
	}
	record := func(id uint64, contents []byte) error {
		g.maxID = max(g.maxID, id)
		if id > limit {
			return cw.add(id, contents)
		}
		g.stats.RecordsBefore++
		g.stats.BytesBefore += uint64(len(contents))
		nc, keep, err := fn(id, contents)
		if err != nil {
			return err
		}
		if !keep {
			g.changed = true
			return nil
		}
		if len(nc) > s.opts.MaxRecordSize {
			return fmt.Errorf("whycache: filestore: compact: replacement of record %d has %d bytes, limit %d: %w",
				id, len(nc), s.opts.MaxRecordSize, logstore.ErrTooLarge)
		}
		g.changed = g.changed || !bytes.Equal(nc, contents)
		g.stats.RecordsAfter++
		g.stats.BytesAfter += uint64(len(nc))
		return cw.add(id, nc)
	}
	for n := 0; ; n++ {
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("whycache: filestore: compact: %w", err)
			}
		}
		b, ok, err := sc.nextBatch()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := sc.eachFrame(b, record); err != nil {
			return err
		}
		if err := cw.endBatch(); err != nil {
			return err
		}
	}
	g.end, g.lastID = sc.end, sc.lastID
	return nil
}

// fsCompactWriter writes kept frames, holding back the last one of a batch
// until the batch ends so it can carry the batch-end flag whichever frames
// were dropped.
type fsCompactWriter struct {
	w       *bufio.Writer
	pending []byte // contents of the held-back frame
	id      uint64 // its id; 0 when none is held back
	frame   []byte // encoding buffer
	frames  int    // frames written
}

// add queues a kept record of the current batch.
func (cw *fsCompactWriter) add(id uint64, contents []byte) error {
	if err := cw.flush(false); err != nil {
		return err
	}
	cw.id, cw.pending = id, append(cw.pending[:0], contents...)
	return nil
}

// endBatch writes the held-back frame as the end of its batch.
func (cw *fsCompactWriter) endBatch() error { return cw.flush(true) }

// flush writes the held-back frame, if any.
func (cw *fsCompactWriter) flush(last bool) error {
	if cw.id == 0 {
		return nil
	}
	cw.frame = fsAppendFrame(cw.frame[:0], cw.id, last, cw.pending)
	cw.id = 0
	cw.frames++
	if _, err := cw.w.Write(cw.frame); err != nil {
		return fmt.Errorf("whycache: filestore: compact: %w", err)
	}
	return nil
}

// installGroupLocked replaces the group's segments by its new file, after
// copying batches appended to the last segment since it was read. It
// returns errFsSegmentGone when the MANIFEST no longer lists the group. The
// caller holds the writer lock.
func (s *FileStore) installGroupLocked(g *fsGroup) error {
	m, err := s.manifest()
	if err != nil {
		return err
	}
	if m.id != g.logID {
		return fmt.Errorf("whycache: filestore: compact: the log was reset meanwhile")
	}
	at := -1
	for i, sg := range m.Segments {
		if sg == g.segs[0] {
			at = i
			break
		}
	}
	if at < 0 || at+len(g.segs) > len(m.Segments) || !fsSameSegments(m.Segments[at:at+len(g.segs)], g.segs) {
		return fmt.Errorf("%w: group of %s", errFsSegmentGone, g.segs[0].Name)
	}
	if err := s.copyAppendedLocked(g); err != nil {
		return err
	}
	if !g.changed {
		return nil
	}
	nm := m.next()
	var repl []fsSegment
	if g.kept {
		name := fsSegmentName(g.segs[0].First, nm.Generation)
		if !s.opts.NoSync {
			if err := g.out.Sync(); err != nil {
				return fmt.Errorf("whycache: filestore: compact: %w", err)
			}
		}
		if err := fsRenameSync(g.out.Name(), s.path(name), !s.opts.NoSync); err != nil {
			return err
		}
		repl = []fsSegment{{Name: name, First: g.segs[0].First}}
	}
	nm.Segments = append(append(nm.Segments[:at:at], repl...), m.Segments[at+len(g.segs):]...)
	if g.maxID > 0 {
		nm.IDFloor = max(nm.IDFloor, g.maxID+1)
	}
	if err := s.publishLocked(nm); err != nil {
		if g.kept {
			os.Remove(s.path(repl[0].Name))
		}
		return err
	}
	for _, sg := range g.segs {
		os.Remove(s.path(sg.Name))
	}
	return nil
}

// fsSameSegments reports whether a and b list the same segments.
func fsSameSegments(a, b []fsSegment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// copyAppendedLocked appends to the group's file the complete batches
// committed to its last segment after rewriteGroup read it (only the tail
// segment grows). The caller holds the writer lock, so no more can come.
func (s *FileStore) copyAppendedLocked(g *fsGroup) error {
	f, err := s.openSegment(g.segs[len(g.segs)-1].Name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == g.end {
		return err
	}
	var sc fsScanner
	if err := sc.start(f, g.end, g.lastID); err != nil {
		return err
	}
	if err := sc.scanToEnd(); err != nil {
		return err
	}
	if sc.end == g.end {
		return nil
	}
	if _, err := g.out.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("whycache: filestore: compact: %w", err)
	}
	if _, err := io.Copy(g.out, io.NewSectionReader(f, g.end, sc.end-g.end)); err != nil {
		return fmt.Errorf("whycache: filestore: compact: %w", err)
	}
	g.kept = true
	g.maxID = max(g.maxID, sc.lastID)
	return nil
}

// Reset deletes every record and gives the log a new identity; ids go on
// above every id assigned before (see LatestUpdateID). It also works on a
// log whose tail segment is damaged, the way out of ErrCorrupt; the ids
// then skip ahead by a bound taken from the segment's size.
func (s *FileStore) Reset(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	return s.withWriterLock(func() error {
		m, err := s.manifest()
		if err != nil {
			return err
		}
		floor, err := s.idBoundLocked(m)
		if err != nil {
			return err
		}
		nm, err := fsNewManifest(floor, m.Generation+1)
		if err != nil {
			return err
		}
		s.w.close()
		if err := s.publishLocked(nm); err != nil {
			return err
		}
		return s.removeOrphansLocked()
	})
}

// idBoundLocked returns an id above every id assigned in the log: the next
// id a Commit would take or, when the tail segment cannot be read to its
// end, a bound from its size (frames appended to a segment since its roll
// or rewrite, which set the id floor, take consecutive ids from the floor,
// and each frame has at least fsFrameMinLen bytes). The caller holds the
// writer lock.
func (s *FileStore) idBoundLocked(m *fsManifest) (uint64, error) {
	if len(m.Segments) == 0 {
		return m.IDFloor, nil
	}
	if err := s.syncWriterLocked(m); err == nil {
		return max(m.IDFloor, s.w.lastID+1), nil
	}
	fi, err := os.Stat(s.path(m.Segments[len(m.Segments)-1].Name))
	if err != nil {
		return 0, fmt.Errorf("whycache: filestore: reset: %w", err)
	}
	return m.IDFloor + uint64(fi.Size())/fsFrameMinLen, nil
}

// removeOrphansLocked removes segment files the MANIFEST does not list
// and temporary files nobody holds (left by crashes, replaced by a
// compaction or dropped by a Reset). The caller holds the writer lock.
func (s *FileStore) removeOrphansLocked() error {
	m, err := s.manifest()
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(m.Segments))
	for _, sg := range m.Segments {
		listed[sg.Name] = true
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".seg") && !listed[name]:
			os.Remove(s.path(name))
		case strings.HasSuffix(name, ".tmp"):
			s.removeUnheldTemp(name)
		}
	}
	return nil
}

// removeUnheldTemp removes a temporary file unless a live compaction holds
// its flock.
func (s *FileStore) removeUnheldTemp(name string) {
	f, err := os.Open(s.path(name))
	if err != nil {
		return
	}
	defer f.Close()
	if ok, err := fsTryLockFile(f); ok && err == nil {
		os.Remove(s.path(name))
	}
}
