package whycache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/whycache/whycache/logstore"
)

// fsCommitReq is one Commit call waiting for, or served by, a group leader.
type fsCommitReq struct {
	records []logstore.Record
	// lastID and err are the outcome, set before done is closed.
	lastID uint64
	err    error
	// done is closed when the outcome is set or when the request is
	// promoted to leader (lead, written under FileStore.qmu, is then true).
	done chan struct{}
	lead bool
}

// Commit appends records as one atomic batch and returns the id of the last
// one; see logstore.Store. Concurrent calls share one write and one
// fdatasync. A record larger than Limits().MaxRecordSize fails the call with
// an error wrapping logstore.ErrTooLarge before anything is written. A
// failed write is truncated away; a failed fdatasync leaves the outcome
// unknown and says so. A caller whose context ends while it waits for
// another call's write returns at once if its records were not taken yet.
func (s *FileStore) commitRecords(ctx context.Context, records []logstore.Record) (uint64, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.leave()
	if len(records) == 0 {
		return s.latest(ctx)
	}
	for i, r := range records {
		if len(r.Contents) > s.opts.MaxRecordSize {
			return 0, fmt.Errorf("whycache: filestore: commit: record %d has %d bytes, limit %d: %w",
				i, len(r.Contents), s.opts.MaxRecordSize, logstore.ErrTooLarge)
		}
	}
	req := &fsCommitReq{records: records, done: make(chan struct{})}
	s.qmu.Lock()
	s.queue = append(s.queue, req)
	if s.leading {
		s.qmu.Unlock()
		if !s.awaitTurn(ctx, req) {
			return req.lastID, req.err
		}
		s.qmu.Lock()
	}
	s.leading = true
	group := s.queue
	s.queue = nil
	s.qmu.Unlock()

	s.commitGroup(group)

	s.qmu.Lock()
	if len(s.queue) > 0 {
		s.queue[0].lead = true
		close(s.queue[0].done)
	} else {
		s.leading = false
	}
	s.qmu.Unlock()
	return req.lastID, req.err
}

// awaitTurn waits until req has an outcome (false) or is promoted to leader
// (true). When ctx ends first and req is still queued, req is withdrawn
// with ctx's error as outcome.
func (s *FileStore) awaitTurn(ctx context.Context, req *fsCommitReq) bool {
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
			req.err = fmt.Errorf("whycache: filestore: commit: %w", ctx.Err())
			return false
		}
	}
	s.qmu.Unlock()
	<-req.done
	return req.lead
}

// commitGroup appends the records of every request under the writer lock
// and hands out the outcomes.
func (s *FileStore) commitGroup(group []*fsCommitReq) {
	err := s.withWriterLock(func() error { return s.appendLocked(group) })
	for _, r := range group {
		if err != nil {
			r.lastID, r.err = 0, err
		}
		if !r.lead {
			close(r.done)
		}
	}
}

// appendLocked writes the records of group as one batch per request. The
// caller holds the writer lock.
func (s *FileStore) appendLocked(group []*fsCommitReq) error {
	m, err := s.manifest()
	if err != nil {
		return err
	}
	if err := s.syncWriterLocked(m); err != nil {
		return err
	}
	next := max(m.IDFloor, s.w.lastID+1)
	if len(m.Segments) == 0 || (s.w.end >= s.opts.SegmentSize && s.w.lastID != 0) {
		if err := s.rollLocked(m, next); err != nil {
			return err
		}
	}
	n := 0
	for _, r := range group {
		n += len(r.records)
	}
	if next > math.MaxUint64-uint64(n) {
		return fmt.Errorf("whycache: filestore: commit: ids exhausted")
	}
	buf := s.w.buf[:0]
	id := next
	for _, r := range group {
		for i, rec := range r.records {
			buf = fsAppendFrame(buf, id, i == len(r.records)-1, rec.Contents)
			id++
		}
		r.lastID = id - 1
	}
	s.w.buf = buf
	if cap(buf) > 4<<20 { // do not keep a huge buffer after a huge batch
		s.w.buf = nil
	}
	return s.w.append(buf, id-1, !s.opts.NoSync)
}

// fsWriter is the segment a FileStore appends to. It is guarded by
// FileStore.wmu and valid only while the flock is held: syncWriterLocked
// brings it up to date first.
type fsWriter struct {
	f    *os.File // the tail segment, or nil
	name string
	// end is the offset just past the last complete batch, lastID the id
	// of its last frame (0 when the segment holds none).
	end    int64
	lastID uint64
	buf    []byte // reused encoding buffer
}

// close closes the segment file, if any.
func (w *fsWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f, w.name, w.end, w.lastID = nil, "", 0, 0
	return err
}

// append writes data (complete batches ending with lastID) after the last
// complete batch, then syncs. Blocks are reserved first so a full disk
// fails before anything is written; a failed write is truncated away.
func (w *fsWriter) append(data []byte, lastID uint64, sync bool) error {
	if err := fsReserve(w.f, w.end, int64(len(data))); err != nil {
		return fmt.Errorf("whycache: filestore: commit: %w", err)
	}
	if _, err := w.f.WriteAt(data, w.end); err != nil {
		if terr := w.f.Truncate(w.end); terr != nil {
			return fmt.Errorf("whycache: filestore: commit: write failed (%w) and removing it failed (%w): outcome unknown", err, terr)
		}
		return fmt.Errorf("whycache: filestore: commit: %w", err)
	}
	if sync {
		if err := fsDataSync(w.f); err != nil {
			return fmt.Errorf("whycache: filestore: commit: outcome unknown: %w", err)
		}
	}
	w.end += int64(len(data))
	w.lastID = lastID
	return nil
}

// syncWriterLocked points the writer at m's tail segment, reads batches
// other writers appended since it last looked, and truncates a torn tail
// left by a crashed writer. The caller holds the writer lock.
func (s *FileStore) syncWriterLocked(m *fsManifest) error {
	w := &s.w
	if len(m.Segments) == 0 {
		return w.close()
	}
	tail := m.Segments[len(m.Segments)-1]
	if w.f == nil || w.name != tail.Name {
		w.close()
		f, err := os.OpenFile(s.path(tail.Name), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("whycache: filestore: open tail segment: %w", err)
		}
		w.f, w.name = f, tail.Name
	}
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	if fi.Size() == w.end {
		return nil
	}
	var sc fsScanner
	if err := sc.start(w.f, w.end, w.lastID); err != nil {
		return err
	}
	if err := sc.scanToEnd(); err != nil {
		return err
	}
	w.end, w.lastID = sc.end, sc.lastID
	if fi, err = w.f.Stat(); err == nil && fi.Size() > w.end {
		err = w.f.Truncate(w.end)
	}
	if err != nil {
		return fmt.Errorf("whycache: filestore: remove torn tail: %w", err)
	}
	return nil
}

// rollLocked starts a new tail segment whose first id is next and
// publishes it. The caller holds the writer lock.
func (s *FileStore) rollLocked(m *fsManifest, next uint64) error {
	name := fsSegmentName(next, 0)
	sync := !s.opts.NoSync
	tmp, err := fsWriteTemp(s.dir, name+".tmp", s.opts.FileMode, []byte(fsSegMagic), sync)
	if err != nil {
		return err
	}
	err = fsRenameSync(tmp.Name(), s.path(name), sync)
	tmp.Close()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path(name), os.O_RDWR, 0) // named as listed, for errors
	if err != nil {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	nm := m.next()
	nm.Segments = append(nm.Segments, fsSegment{Name: name, First: next})
	nm.IDFloor = next
	if err := s.publishLocked(nm); err != nil {
		f.Close()
		return err
	}
	s.w.close()
	s.w.f, s.w.name, s.w.end, s.w.lastID = f, name, int64(len(fsSegMagic)), 0
	return nil
}

// errFsSegmentGone reports a segment file named by a MANIFEST that was
// removed since: the caller re-reads the MANIFEST and retries.
var errFsSegmentGone = errors.New("whycache: filestore: segment file gone")
