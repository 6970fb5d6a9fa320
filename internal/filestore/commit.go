package filestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/whycache/whycache/logstore"
)

// commitReq is one Commit call waiting for, or served by, a group leader.
type commitReq struct {
	records []logstore.Record
	expect  logstore.LogID
	nonce   uint64
	// res and err are the outcome, set before done is closed.
	res logstore.Committed
	err error
	// done is closed when the outcome is set or when the request is
	// promoted to leader (lead, written under Store.qmu, is then true).
	done chan struct{}
	lead bool
}

// Commit appends records as one atomic batch under a new nonce and returns
// their ids and the nonce; see logstore.Store. Concurrent calls share one
// write and one fdatasync, each batch with its own nonce. The identity is
// checked under the writer lock: when expect is set and is not the log's,
// the call fails with logstore.ErrLogMismatch and writes nothing. A record
// larger than Limits().MaxRecordSize fails the call with an error wrapping
// logstore.ErrTooLarge before anything is written. A failed write is
// truncated away; a failed fdatasync leaves the outcome unknown and says
// so. Damage to acknowledged bytes of the tail segment fails the Commit of
// every handle that reads them (a handle reads the tail from where it last
// wrote or read it, not again the bytes it wrote itself) with an error
// wrapping logstore.ErrCorrupt, truncating nothing: no acknowledged record
// is dropped and no id is given out twice; readers stop before the damage
// until it is repaired. Waits
// (for another call's write, for the writer lock another process holds)
// end with ctx's error as soon as ctx is done, with nothing written.
func (s *Store) Commit(ctx context.Context, expect logstore.LogID, records []logstore.Record) (logstore.Committed, error) {
	if err := s.enter(ctx); err != nil {
		return logstore.Committed{}, err
	}
	defer s.leave()
	if len(records) == 0 {
		return s.commitNothing(expect)
	}
	for i, r := range records {
		if len(r.Contents) > s.opts.MaxRecordSize {
			return logstore.Committed{}, fmt.Errorf("filestore: commit: record %d has %d bytes, limit %d: %w",
				i, len(r.Contents), s.opts.MaxRecordSize, logstore.ErrTooLarge)
		}
	}
	nonce, err := logstore.NewNonce()
	if err != nil {
		return logstore.Committed{}, fmt.Errorf("filestore: commit: %w", err)
	}
	req := &commitReq{records: records, expect: expect, nonce: nonce, done: make(chan struct{})}
	s.qmu.Lock()
	s.queue = append(s.queue, req)
	if s.leading {
		s.qmu.Unlock()
		if !s.awaitTurn(ctx, req) {
			return req.res, req.err
		}
	} else {
		s.leading = true
		s.qmu.Unlock()
	}
	// req leads: it takes the writer lock while the queue stays open, so
	// that queued calls can still withdraw, then serves the whole queue.
	if err := s.lockWriter(ctx); err != nil {
		s.qmu.Lock()
		if i := slices.Index(s.queue, req); i >= 0 {
			s.queue = slices.Delete(s.queue, i, i+1)
		}
		s.handOffLocked()
		s.qmu.Unlock()
		return logstore.Committed{}, fmt.Errorf("filestore: commit: %w", err)
	}
	s.qmu.Lock()
	group := s.queue
	s.queue = nil
	s.qmu.Unlock()

	err = s.appendLocked(group)
	if uerr := s.unlockWriter(); err == nil {
		err = uerr
	}
	for _, r := range group {
		if err != nil && r.err == nil {
			r.res, r.err = logstore.Committed{}, err
		}
		if !r.lead {
			close(r.done)
		}
	}
	s.qmu.Lock()
	s.handOffLocked()
	s.qmu.Unlock()
	return req.res, req.err
}

// commitNothing is Commit without records: the latest id, after checking
// the identity.
func (s *Store) commitNothing(expect logstore.LogID) (logstore.Committed, error) {
	var latest logstore.Position
	err := s.withSegments(func(m *manifest) error {
		if expect != (logstore.LogID{}) && expect != m.id {
			return mismatchErr(m, expect)
		}
		var err error
		latest, _, err = s.head(m, nil)
		return err
	})
	return logstore.Committed{First: latest.ID, Last: latest.ID}, err
}

// mismatchErr is the error for a commit that expected another identity.
func mismatchErr(m *manifest, expect logstore.LogID) error {
	return fmt.Errorf("filestore: commit: log %x, expected %x: %w", m.id, expect, logstore.ErrLogMismatch)
}

// handOffLocked ends a leader's turn: the first queued request, if any,
// becomes the leader. The caller holds qmu.
func (s *Store) handOffLocked() {
	if len(s.queue) > 0 {
		s.queue[0].lead = true
		close(s.queue[0].done)
		return
	}
	s.leading = false
}

// awaitTurn waits until req has an outcome (false) or is promoted to leader
// (true). When ctx ends first and req is still queued, req is withdrawn
// with ctx's error as outcome.
func (s *Store) awaitTurn(ctx context.Context, req *commitReq) bool {
	select {
	case <-req.done:
		return req.lead
	case <-ctx.Done():
	}
	s.qmu.Lock()
	if !req.lead {
		if i := slices.Index(s.queue, req); i >= 0 {
			s.queue = slices.Delete(s.queue, i, i+1)
			s.qmu.Unlock()
			req.err = fmt.Errorf("filestore: commit: %w", ctx.Err())
			return false
		}
	}
	s.qmu.Unlock()
	<-req.done
	return req.lead
}

// appendLocked writes the records of group, one batch per request with the
// request's nonce, after checking each request's expected identity. The
// caller holds the writer lock.
func (s *Store) appendLocked(group []*commitReq) error {
	m, err := s.manifest()
	if err != nil {
		return err
	}
	if err := s.syncWriterLocked(m); err != nil {
		return err
	}
	n := 0
	for _, r := range group {
		if r.expect != (logstore.LogID{}) && r.expect != m.id {
			r.err = mismatchErr(m, r.expect)
			continue
		}
		n += len(r.records)
	}
	if n == 0 {
		return nil
	}
	next := max(m.IDFloor, s.w.lastID+1)
	prev := s.lastPositionLocked(m)
	if len(m.Segments) == 0 || s.w.format != format2 || (s.w.end >= s.opts.SegmentSize && s.w.lastID != 0) {
		if err := s.rollLocked(m, next); err != nil {
			return err
		}
	}
	if next > math.MaxUint64-uint64(n) {
		return fmt.Errorf("filestore: commit: ids exhausted")
	}
	buf := s.w.buf[:0]
	id := next
	var lastNonce uint64
	for _, r := range group {
		if r.err != nil {
			continue
		}
		r.res = logstore.Committed{First: id, Nonce: r.nonce, Prev: prev}
		for i, rec := range r.records {
			buf = appendFrame(buf, id, r.nonce, i == len(r.records)-1, false, rec.Contents)
			id++
		}
		r.res.Last, lastNonce = id-1, r.nonce
		prev = r.res.Position()
	}
	s.w.buf = buf
	if cap(buf) > 4<<20 { // do not keep a huge buffer after a huge batch
		s.w.buf = nil
	}
	return s.w.append(buf, id-1, lastNonce, !s.opts.NoSync)
}

// tailWriter is the segment a Store appends to. It is guarded by the
// writer lock (Store.wsem) and valid only while the flock is held:
// syncWriterLocked brings it up to date first.
type tailWriter struct {
	f      *os.File // the tail segment, or nil
	name   string
	format segFormat
	epoch  uint64 // the MANIFEST epoch the state was read in
	// generation is that of the MANIFEST the writer last synced with or
	// published, recorded in the watermark.
	generation uint64
	// end is the offset just past the last complete batch, lastID and
	// lastNonce the position of its last frame (0 when the segment holds
	// none).
	end       int64
	lastID    uint64
	lastNonce uint64
	wm        watermarkWriter
	buf       []byte // reused encoding buffer
}

// close closes the segment file and the watermark, if open.
func (w *tailWriter) close() error {
	err := w.wm.close()
	if cerr := w.closeTail(); err == nil {
		err = cerr
	}
	return err
}

// closeTail closes the segment file, if open, and forgets its state.
func (w *tailWriter) closeTail() error {
	var err error
	if w.f != nil {
		err = w.f.Close()
	}
	w.f, w.name, w.format, w.end, w.lastID, w.lastNonce = nil, "", 0, 0, 0, 0
	return err
}

// append writes data (complete batches ending with lastID, under nonce)
// after the last complete batch, syncs, and records the new acknowledged
// end in the watermark. Blocks are reserved first so a full disk fails
// before anything is written; a failed write is truncated away. The
// commit stands when the watermark cannot be written (it is then stale,
// which only weakens the detection of damage; the next commit rewrites
// it).
func (w *tailWriter) append(data []byte, lastID, nonce uint64, sync bool) error {
	if err := reserve(w.f, w.end, int64(len(data))); err != nil {
		return fmt.Errorf("filestore: commit: %w", err)
	}
	if _, err := w.f.WriteAt(data, w.end); err != nil {
		if terr := w.f.Truncate(w.end); terr != nil {
			return fmt.Errorf("filestore: commit: write failed (%w) and removing it failed (%w): outcome unknown", err, terr)
		}
		return fmt.Errorf("filestore: commit: %w", err)
	}
	if sync {
		if err := dataSync(w.f); err != nil {
			return fmt.Errorf("filestore: commit: outcome unknown: %w", err)
		}
	}
	w.end += int64(len(data))
	w.lastID, w.lastNonce = lastID, nonce
	w.wm.write(w.generation, w.name, ackedEnd{end: w.end, lastID: lastID, nonce: nonce}, time.Now())
	return nil
}

// syncWriterLocked points the writer at m's tail segment, reads batches
// other writers appended since it last looked, and truncates a torn tail
// left by a crashed writer: bytes beyond the acknowledged end (the larger
// of the MANIFEST's and the watermark's) that do not form complete
// batches. Damage below it is logstore.ErrCorrupt, and nothing is
// truncated. The caller holds the writer lock.
func (s *Store) syncWriterLocked(m *manifest) error {
	w := &s.w
	// Reopened in a new epoch, and when the file was replaced (a restore
	// in place under a MANIFEST this handle knew): acknowledgements go to
	// the file readers read.
	if w.wm.f == nil || w.epoch != m.epoch || !stillAt(w.wm.f, filepath.Join(s.dir, watermarkName)) {
		if _, err := w.wm.open(s.dir, s.opts.FileMode); err != nil {
			return err
		}
	}
	wm, err := readWatermarkFile(w.wm.f)
	if err != nil {
		return err
	}
	w.wm.seq = wm.seq // other processes wrote since
	if len(m.Segments) == 0 {
		w.epoch = m.epoch
		return w.closeTail()
	}
	tail := m.Segments[len(m.Segments)-1]
	fresh := w.f == nil || w.name != tail.Name || w.epoch != m.epoch
	if fresh {
		w.closeTail()
		f, err := os.OpenFile(s.path(tail.Name), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("filestore: open tail segment: %w", err)
		}
		w.f, w.name, w.epoch = f, tail.Name, m.epoch
	}
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	w.generation = m.Generation
	check := m.segCheck(len(m.Segments)-1, wm.forSegment(m, tail.Name), nil)
	if !fresh && fi.Size() == w.end && w.end >= check.ack.end {
		return nil
	}
	from := segPos{off: w.end, lastID: w.lastID, nonce: w.lastNonce, format: w.format}
	if fresh || fi.Size() < w.end {
		from = segPos{}
	}
	var sc scanner
	if err := sc.start(w.f, from, check); err != nil {
		return err
	}
	if err := sc.scanToEnd(); err != nil {
		return err
	}
	w.format, w.end, w.lastID, w.lastNonce = sc.rd.format, sc.end, sc.lastID, sc.nonce
	if fi, err = w.f.Stat(); err == nil && fi.Size() > w.end {
		err = w.f.Truncate(w.end)
	}
	if err != nil {
		return fmt.Errorf("filestore: remove torn tail: %w", err)
	}
	return nil
}

// rollLocked seals the tail segment, recording its size and last position
// in the MANIFEST, and starts a new tail segment whose first id is next.
// The caller holds the writer lock and synced the writer.
func (s *Store) rollLocked(m *manifest, next uint64) error {
	name := segmentName(next, 0)
	sync := !s.opts.NoSync
	tmp, err := writeTemp(s.dir, name+".tmp", s.opts.FileMode, []byte(segMagic2), sync)
	if err != nil {
		return err
	}
	err = renameSync(tmp.Name(), s.path(name), sync)
	tmp.Close()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path(name), os.O_RDWR, 0) // named as listed, for errors
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	nm := m.next()
	if n := len(nm.Segments); n > 0 {
		t := &nm.Segments[n-1]
		t.Size, t.LastID, t.LastNonce = s.w.end, s.w.lastID, s.w.lastNonce
	}
	nm.Segments = append(nm.Segments, segment{Name: name, First: next, Size: magicLen})
	nm.IDFloor = next
	if err := s.publishLocked(nm); err != nil {
		f.Close()
		return err
	}
	if s.w.f != nil {
		s.w.f.Close()
	}
	s.w.f, s.w.name, s.w.format, s.w.epoch, s.w.generation = f, name, format2, nm.epoch, nm.Generation
	s.w.end, s.w.lastID, s.w.lastNonce = magicLen, 0, 0
	return nil
}

// errSegmentGone reports a segment file named by a MANIFEST that was
// removed since: the caller re-reads the MANIFEST and retries. It never
// reaches a caller of the store on its own (withSegments, Poll and
// Compact retry, or name it in an error of their own), so it carries no
// package prefix.
var errSegmentGone = errors.New("segment file gone")

// lastPositionLocked returns the position of the log's last record (or
// mark): the tail segment's last batch, else the last position the
// MANIFEST records for a sealed segment, else the zero Position (an empty
// log, or segments of a format that records none: the caller then cannot
// vouch for what a commit follows). The caller holds the writer lock and
// synced the writer.
func (s *Store) lastPositionLocked(m *manifest) logstore.Position {
	if s.w.lastID != 0 {
		return logstore.Position{ID: s.w.lastID, Nonce: s.w.lastNonce}
	}
	for i := len(m.Segments) - 1; i >= 0; i-- {
		if sg := m.Segments[i]; sg.LastID != 0 {
			return logstore.Position{ID: sg.LastID, Nonce: sg.LastNonce}
		}
		if i < len(m.Segments)-1 {
			break // a sealed segment that records no position
		}
	}
	return logstore.Position{}
}
