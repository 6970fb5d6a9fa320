package whycache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
)

// fsCursor is a position in a segment just past a complete batch whose
// last id is lastID. Batches before it never change, and a name is never
// reused for other contents, so it stays valid as long as the segment is
// listed.
type fsCursor struct {
	seg    string
	off    int64
	lastID uint64
}

// fsCursors keeps the few most recent cursors, enough for a poller that
// alternates LatestUpdateID and ReadUpdates(last+1, latest).
type fsCursors struct {
	c    [4]fsCursor
	next int // ring index of the slot to overwrite
}

// best returns the cursor in seg with the highest lastID below below.
func (cs *fsCursors) best(seg string, below uint64) (fsCursor, bool) {
	var b fsCursor
	found := false
	for _, c := range cs.c {
		if c.seg == seg && c.lastID < below && (!found || c.lastID > b.lastID) {
			b, found = c, true
		}
	}
	return b, found
}

// note remembers c.
func (cs *fsCursors) note(c fsCursor) {
	for _, o := range cs.c {
		if o == c {
			return
		}
	}
	cs.c[cs.next] = c
	cs.next = (cs.next + 1) % len(cs.c)
}

// cursor returns the best cursor in seg below id (see fsCursors.best).
func (s *FileStore) cursor(seg string, below uint64) (fsCursor, bool) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.cursors.best(seg, below)
}

// noteCursor remembers a scan position.
func (s *FileStore) noteCursor(c fsCursor) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.cursors.note(c)
}

// fsScannerPool recycles scanner buffers between reads.
var fsScannerPool = sync.Pool{New: func() any { return new(fsScanner) }}

// fsPutScanner returns sc to the pool unless its buffer grew large.
func fsPutScanner(sc *fsScanner) {
	if cap(sc.rd.buf) > 1<<20 {
		return
	}
	sc.rd.f = nil
	fsScannerPool.Put(sc)
}

// fsMaxManifestRetries bounds how often one call re-reads the MANIFEST
// after finding a segment file gone.
const fsMaxManifestRetries = 100

// withSegments runs fn on the current MANIFEST, and again on a fresh one
// each time fn reports errFsSegmentGone (a compaction or Reset replaced a
// file after the MANIFEST was read).
func (s *FileStore) withSegments(fn func(m *fsManifest) error) error {
	for attempt := 0; ; attempt++ {
		m, err := s.manifest()
		if err != nil {
			return err
		}
		err = fn(m)
		if !errors.Is(err, errFsSegmentGone) {
			return err
		}
		if attempt == fsMaxManifestRetries {
			return fsCorruptf("a segment listed in the MANIFEST is missing (%v)", err)
		}
	}
}

// openSegment opens a listed segment for reading; a missing file is
// errFsSegmentGone.
func (s *FileStore) openSegment(name string) (*os.File, error) {
	f, err := os.Open(s.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", errFsSegmentGone, name)
	}
	if err != nil {
		return nil, fmt.Errorf("whycache: filestore: %w", err)
	}
	return f, nil
}

// ReadUpdates calls fn for every record with low <= id <= high in id order;
// see logstore.Store. Only complete Commit batches are delivered. contents
// is valid only during the call. Errors from fn are returned as is; a
// damaged frame yields an error wrapping logstore.ErrCorrupt. fn may call
// any method of the store other than Close without deadlocking.
func (s *FileStore) ReadUpdates(ctx context.Context, low, high uint64, fn func(id uint64, contents []byte) error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	low = max(low, 1)
	if high < low {
		return nil
	}
	sc := fsScannerPool.Get().(*fsScanner)
	defer fsPutScanner(sc)
	pos := low // the lowest id not delivered yet
	return s.withSegments(func(m *fsManifest) error {
		for i := m.segmentFor(pos); i < len(m.Segments); i++ {
			sg := m.Segments[i]
			if sg.First > high {
				return nil
			}
			f, err := s.openSegment(sg.Name)
			if err != nil {
				return err
			}
			done, err := s.readSegment(ctx, sc, f, sg.Name, &pos, high, fn)
			f.Close()
			if done || err != nil {
				return err
			}
		}
		return nil
	})
}

// readSegment delivers the records of one segment with *pos <= id <= high,
// advancing *pos past each. done reports that a record above high was
// reached.
func (s *FileStore) readSegment(ctx context.Context, sc *fsScanner, f *os.File, name string, pos *uint64, high uint64, fn func(uint64, []byte) error) (done bool, err error) {
	c, _ := s.cursor(name, *pos)
	if err := sc.start(f, c.off, c.lastID); err != nil {
		return false, err
	}
	resume := fsCursor{seg: name, off: sc.end, lastID: sc.lastID}
	defer func() {
		if resume.lastID > c.lastID {
			s.noteCursor(resume)
		}
	}()
	deliver := func(id uint64, contents []byte) error {
		if id < *pos || id > high {
			return nil
		}
		*pos = id + 1
		return fn(id, contents)
	}
	for n := 0; ; n++ {
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return false, fmt.Errorf("whycache: filestore: read: %w", err)
			}
		}
		b, ok, err := sc.nextBatch()
		if err != nil || !ok {
			return false, err
		}
		if b.firstID > high {
			return true, nil
		}
		if b.lastID >= *pos {
			if err := sc.eachFrame(b, deliver); err != nil {
				return false, err
			}
		}
		if b.lastID >= high {
			if b.lastID == high {
				resume = fsCursor{seg: name, off: b.end, lastID: b.lastID}
			}
			return true, nil
		}
		resume = fsCursor{seg: name, off: b.end, lastID: b.lastID}
	}
}

// LatestUpdateID returns the id of the last record of the last complete
// batch, or, when the log holds none (empty, compacted away or Reset), the
// highest id ever assigned in the directory (0 for a new log). It never
// decreases. A poller's repeated calls read only the bytes appended since.
func (s *FileStore) LatestUpdateID(ctx context.Context) (uint64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.leave()
	return s.latest(ctx)
}

// latest implements LatestUpdateID for a caller inside enter/leave.
func (s *FileStore) latest(context.Context) (uint64, error) {
	var latest uint64
	err := s.withSegments(func(m *fsManifest) error {
		latest = m.IDFloor - 1
		if len(m.Segments) == 0 {
			return nil
		}
		name := m.Segments[len(m.Segments)-1].Name
		c, ok := s.cursor(name, math.MaxUint64)
		if ok {
			fi, err := os.Stat(s.path(name))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%w: %s", errFsSegmentGone, name)
			}
			if err == nil && fi.Size() == c.off {
				latest = max(latest, c.lastID)
				return nil
			}
		}
		f, err := s.openSegment(name)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := fsScannerPool.Get().(*fsScanner)
		defer fsPutScanner(sc)
		if err := sc.start(f, c.off, c.lastID); err != nil {
			return err
		}
		if err := sc.scanToEnd(); err != nil {
			return err
		}
		if sc.end > c.off {
			s.noteCursor(fsCursor{seg: name, off: sc.end, lastID: sc.lastID})
		}
		latest = max(latest, sc.lastID)
		return nil
	})
	return latest, err
}
