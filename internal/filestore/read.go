package filestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/whycache/whycache/logstore"
)

// cursor is a position just past a complete batch of a segment,
// remembered so that a poller's next call reads only what is new. Batches
// before it never change and a name is never reused for other contents
// within one epoch of the MANIFEST (see manifest.epoch: a MANIFEST
// restored from a backup starts a new one, as its segments may then hold
// other contents under the same names), so it stays valid while the
// segment is listed and the epoch lasts.
type cursor struct {
	seg   string
	epoch uint64
	pos   segPos
	// time is the commit time (Unix ns) of the batch at pos, 0 when
	// unknown; timeTried is set once the watermark was read for it.
	time      int64
	timeTried bool
}

// position returns the log position of the batch at the cursor.
func (c cursor) position() logstore.Position {
	return logstore.Position{ID: c.pos.lastID, Nonce: c.pos.nonce}
}

// cursorSlots is how many cursors a Store remembers: enough for a
// poller that alternates LatestUpdateID and ReadUpdates(last+1, latest),
// or pages through a log with Poll, and for a few such callers at once.
const cursorSlots = 8

// cursorRing keeps the most recent cursors in a ring.
type cursorRing struct {
	c    [cursorSlots]cursor
	next int // ring index of the slot to overwrite
}

// best returns the cursor in seg (of epoch) with the highest lastID below
// below.
func (cs *cursorRing) best(seg string, epoch, below uint64) (cursor, bool) {
	var b cursor
	found := false
	for _, c := range cs.c {
		if c.seg == seg && c.epoch == epoch && c.pos.lastID < below && (!found || c.pos.lastID > b.pos.lastID) {
			b, found = c, true
		}
	}
	return b, found
}

// at returns a cursor (of epoch) just past the batch that ends at id.
func (cs *cursorRing) at(epoch, id uint64) (cursor, bool) {
	for _, c := range cs.c {
		if c.seg != "" && c.epoch == epoch && c.pos.lastID == id {
			return c, true
		}
	}
	return cursor{}, false
}

// note remembers c, replacing a cursor at the same place.
func (cs *cursorRing) note(c cursor) {
	for i, o := range cs.c {
		if o.seg == c.seg && o.epoch == c.epoch && o.pos == c.pos {
			cs.c[i] = c
			return
		}
	}
	cs.c[cs.next] = c
	cs.next = (cs.next + 1) % len(cs.c)
}

// cursor returns the best cursor in seg below id (see cursorRing.best).
func (s *Store) cursor(seg string, epoch, below uint64) (cursor, bool) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.cursors.best(seg, epoch, below)
}

// cursorAt returns a cursor just past the batch ending at id.
func (s *Store) cursorAt(epoch, id uint64) (cursor, bool) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.cursors.at(epoch, id)
}

// noteCursor remembers a scan position.
func (s *Store) noteCursor(c cursor) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.cursors.note(c)
}

// scannerPool recycles scanner buffers between reads.
var scannerPool = sync.Pool{New: func() any { return new(scanner) }}

// getScanner takes a scanner from the pool.
func getScanner() *scanner { return scannerPool.Get().(*scanner) }

// putScanner returns sc to the pool unless its buffer grew large.
func putScanner(sc *scanner) {
	if cap(sc.rd.buf) > 1<<20 {
		return
	}
	sc.rd.f, sc.check = nil, scanCheck{}
	scannerPool.Put(sc)
}

// maxManifestRetries bounds how often one call re-reads the MANIFEST
// after finding a segment file gone.
const maxManifestRetries = 100

// withSegments runs fn on the current MANIFEST, and again on a fresh one
// each time fn reports errSegmentGone (a compaction or Reset replaced a
// file after the MANIFEST was read).
func (s *Store) withSegments(fn func(m *manifest) error) error {
	for attempt := 0; ; attempt++ {
		m, err := s.manifest()
		if err != nil {
			return err
		}
		err = fn(m)
		if !errors.Is(err, errSegmentGone) {
			return err
		}
		if err := s.segmentGone(m, err, attempt); err != nil {
			return err
		}
	}
}

// segmentGone decides what a segment file of m found missing (gone, an
// error wrapping errSegmentGone) means: nil when a newer MANIFEST was
// published meanwhile (the caller retries with it), logstore.ErrCorrupt
// when the MANIFEST is unchanged (a listed segment is lost) or keeps
// changing beyond maxManifestRetries attempts.
func (s *Store) segmentGone(m *manifest, gone error, attempt int) error {
	now, err := s.manifest()
	if err != nil {
		return err
	}
	if now == m {
		return corruptf("%s: a segment listed in the MANIFEST is missing (%v)", s.dir, gone)
	}
	if attempt >= maxManifestRetries {
		return corruptf("%s: segment files keep disappearing (%v)", s.dir, gone)
	}
	return nil
}

// openSegment opens a listed segment for reading; a missing file is
// errSegmentGone.
func (s *Store) openSegment(name string) (*os.File, error) {
	f, err := os.Open(s.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", errSegmentGone, name)
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	return f, nil
}

// readCheck returns what a reader's scan of segment i of m verifies: for
// the tail, the acknowledged end comes from the MANIFEST and from the
// watermark, read when a scan stops (seen, if not nil, receives it).
func (s *Store) readCheck(m *manifest, i int, seen *watermark) scanCheck {
	name := m.Segments[i].Name
	return m.segCheck(i, ackedEnd{}, func() (ackedEnd, error) {
		w, err := s.readWatermark(m)
		if seen != nil {
			*seen = w
		}
		return w.forSegment(m, name), err
	})
}

// readWatermark reads the watermark for a reader of m.
func (s *Store) readWatermark(m *manifest) (watermark, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.wmr.read(s.dir, m.epoch)
}

// ReadUpdates calls fn for every record with low <= id <= high in id order;
// see logstore.Store. Only complete Commit batches are delivered. contents
// is valid only during the call. Errors from fn are returned as is; damage
// (see the package documentation) is an error wrapping logstore.ErrCorrupt naming
// the file and offset, returned after the records before it. fn may call
// any method of the store other than Close without deadlocking.
func (s *Store) ReadUpdates(ctx context.Context, low, high uint64, fn func(id uint64, contents []byte) error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	low = max(low, 1)
	if high < low {
		return nil
	}
	sc := getScanner()
	defer putScanner(sc)
	pos := low // the lowest id not delivered yet
	return s.withSegments(func(m *manifest) error {
		for i := m.segmentFor(pos); i < len(m.Segments); i++ {
			sg := m.Segments[i]
			if sg.First > high {
				return nil
			}
			f, err := s.openSegment(sg.Name)
			if err != nil {
				return err
			}
			done, err := s.readSegment(ctx, sc, f, m, i, &pos, high, fn)
			f.Close()
			if done || err != nil {
				return err
			}
		}
		return nil
	})
}

// readSegment delivers the records of segment i of m with *pos <= id <=
// high, advancing *pos past each. done reports that a record above high
// was reached.
func (s *Store) readSegment(ctx context.Context, sc *scanner, f *os.File, m *manifest, i int, pos *uint64, high uint64, fn func(uint64, []byte) error) (done bool, err error) {
	name := m.Segments[i].Name
	c, _ := s.cursor(name, m.epoch, *pos)
	if err := sc.start(f, c.pos, s.readCheck(m, i, nil)); err != nil {
		return false, err
	}
	resume := sc.pos()
	defer func() {
		if resume.lastID > c.pos.lastID {
			s.noteCursor(cursor{seg: name, epoch: m.epoch, pos: resume})
		}
	}()
	deliver := func(fr batchFrame) error {
		if fr.mark || fr.id < *pos || fr.id > high {
			return nil
		}
		*pos = fr.id + 1
		return fn(fr.id, fr.contents)
	}
	for n := 0; ; n++ {
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return false, fmt.Errorf("filestore: read: %w", err)
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
				resume = sc.pos()
			}
			return true, nil
		}
		resume = sc.pos()
	}
}

// LatestUpdateID returns the id of the last record (or mark) of the last
// complete batch, or, when the log holds none (empty, compacted away or
// Reset), the highest id ever assigned in the directory (0 for a new log).
// It never decreases, unless the directory is restored from a backup. A
// poller's repeated calls read only the bytes appended since. Damage in
// the tail segment is an error wrapping logstore.ErrCorrupt.
func (s *Store) LatestUpdateID(ctx context.Context) (uint64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.leave()
	var latest logstore.Position
	err := s.withSegments(func(m *manifest) error {
		var err error
		latest, _, err = s.head(m, nil)
		return err
	})
	return latest.ID, err
}

// heldFile is a segment file a call keeps open to read it again.
type heldFile struct {
	name string
	f    *os.File
}

// close closes the file, if any.
func (h *heldFile) close() {
	if h.f != nil {
		h.f.Close()
		h.f, h.name = nil, ""
	}
}

// head returns the latest position of the log as m and its segments give
// it, and the time of that commit (zero when unknown): the last complete
// batch of the last segment that holds one, or the id floor - 1 (with
// nonce 0) when that is higher. A segment file it opens is left open in
// held, when not nil, for the caller to read again and close.
func (s *Store) head(m *manifest, held *heldFile) (logstore.Position, time.Time, error) {
	var p logstore.Position
	var t int64
	for i := len(m.Segments) - 1; i >= 0 && p.ID == 0; i-- {
		var err error
		if p, t, err = s.segmentEnd(m, i, held); err != nil {
			return logstore.Position{}, time.Time{}, err
		}
	}
	if floor := m.IDFloor - 1; floor > p.ID {
		return logstore.Position{ID: floor}, time.Time{}, nil
	}
	if t == 0 {
		return p, time.Time{}, nil
	}
	return p, time.Unix(0, t), nil
}

// segmentEnd returns the position of the last complete batch of segment i
// of m (the zero position when it has none) and its commit time (Unix ns,
// 0 when unknown). A sealed segment's comes from the MANIFEST; the tail's
// from a cursor when the file did not change since, else from a scan of
// what was appended since.
func (s *Store) segmentEnd(m *manifest, i int, held *heldFile) (logstore.Position, int64, error) {
	sg := m.Segments[i]
	if !m.isTail(i) && sg.Size != 0 {
		return logstore.Position{ID: sg.LastID, Nonce: sg.LastNonce}, 0, nil
	}
	size := int64(-1)
	c, ok := s.cursor(sg.Name, m.epoch, math.MaxUint64)
	if ok {
		fi, err := os.Stat(s.path(sg.Name))
		if errors.Is(err, os.ErrNotExist) {
			return logstore.Position{}, 0, fmt.Errorf("%w: %s", errSegmentGone, sg.Name)
		}
		if err == nil {
			size = fi.Size()
		}
		if err == nil && fi.Size() == c.pos.off {
			if m.isTail(i) && c.time == 0 && !c.timeTried && c.pos.lastID != 0 {
				w, err := s.readWatermark(m)
				if err != nil {
					return logstore.Position{}, 0, err
				}
				if a := w.forSegment(m, sg.Name); a.end == c.pos.off && a.lastID == c.pos.lastID {
					c.time = w.time
				}
				c.timeTried = true
				s.noteCursor(c)
			}
			return c.position(), c.time, nil
		}
	}
	f, err := s.openSegment(sg.Name)
	if err != nil {
		return logstore.Position{}, 0, err
	}
	if held != nil && held.f == nil {
		held.name, held.f = sg.Name, f
	} else {
		defer f.Close()
	}
	sc := getScanner()
	defer putScanner(sc)
	var w watermark
	if err := sc.start(f, c.pos, s.readCheck(m, i, &w)); err != nil {
		return logstore.Position{}, 0, err
	}
	sc.rd.size = size // as just seen: a reader refreshes it when data runs out
	if err := sc.scanToEnd(); err != nil {
		return logstore.Position{}, 0, err
	}
	if ok && sc.end == c.pos.off { // nothing complete was appended
		return c.position(), c.time, nil
	}
	nc := cursor{seg: sg.Name, epoch: m.epoch, pos: sc.pos(), timeTried: w.seq != 0}
	if a := w.forSegment(m, sg.Name); a.end == sc.end && a.lastID == sc.lastID && sc.lastID != 0 {
		nc.time = w.time
	}
	s.noteCursor(nc)
	return nc.position(), nc.time, nil
}
