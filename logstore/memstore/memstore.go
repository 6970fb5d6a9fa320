// Package memstore is an in-memory logstore.Store: a reference
// implementation of the Store contract, used to prove the storetest suite
// and by the tests of packages that need a log without a server or files.
//
// The log lives in memory only and is shared by the handles New and Open
// return; it disappears when the last handle is garbage collected. A log is
// not shared between processes.
package memstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whycache/whycache/logstore"
)

// Default limits, matching the MySQL schema (MEDIUMBLOB contents,
// VARBINARY(1024) single_key).
const (
	DefaultMaxRecordSize    = 1<<24 - 1
	DefaultMaxSingleKeySize = 1024
)

// readPage bounds how many records ReadUpdates copies out under the lock
// before it releases the lock and calls fn.
const readPage = 256

// Options configures a new in-memory log.
type Options struct {
	// Limits are the sizes the log accepts; a zero field takes its default
	// (DefaultMaxRecordSize, DefaultMaxSingleKeySize).
	Limits logstore.Limits

	// SingleKeyReplaces makes Commit drop the previous single-key record for
	// a key when a newer single-key record for it is committed, as the MySQL
	// store does. When false every record stays until Compact or Reset, as
	// in the file store.
	SingleKeyReplaces bool
}

// Store is one handle on an in-memory log. It is safe for concurrent use.
// Handles opened with Open share the log; closing one does not affect the
// others.
type Store struct {
	log    *memLog
	closed atomic.Bool
}

var _ logstore.Store = (*Store)(nil)

// record is one stored record. Contents is never modified in place (it is
// replaced as a whole), and the store never hands it out, only copies.
type record struct {
	id        uint64
	contents  []byte
	singleKey string // "" when the record is not indexed by key
	nonce     uint64 // the nonce of the commit that wrote it
	gen       uint64 // bumped each time Compact replaces contents
	dropped   bool   // a tombstone, skipped by readers until purged
}

// memLog is the shared state of a log.
type memLog struct {
	limits            logstore.Limits
	singleKeyReplaces bool

	mu sync.Mutex // guards the fields below
	// Invariants (checked by Check): recs ascends strictly by id; every id
	// is <= latest; dead counts the dropped records in recs; singles maps a
	// key to the id of the one live record indexed by it, and only when
	// singleKeyReplaces is set; marks holds one position per commit of this
	// identity (its last id and nonce), ascending, none below the horizon
	// once Compact pruned them; latestNonce is the nonce of the last commit
	// (0 before the first one and after Reset).
	info        logstore.Info
	latest      uint64
	latestNonce uint64
	latestTime  time.Time
	recs        []record
	dead        int
	singles     map[string]uint64
	marks       []logstore.Position
}

// New returns a handle on a new, empty log with a random identity. It fails
// only if the system random source fails.
func New(opts Options) (*Store, error) {
	l := &memLog{limits: opts.Limits, singleKeyReplaces: opts.SingleKeyReplaces}
	if l.limits.MaxRecordSize <= 0 {
		l.limits.MaxRecordSize = DefaultMaxRecordSize
	}
	if l.limits.MaxSingleKeySize <= 0 {
		l.limits.MaxSingleKeySize = DefaultMaxSingleKeySize
	}
	id, err := newLogID()
	if err != nil {
		return nil, err
	}
	l.info.ID = id
	l.singles = make(map[string]uint64)
	return &Store{log: l}, nil
}

// Open returns another, independent handle on the same log, as a second
// process would open it. It works even after s is closed.
func (s *Store) Open() *Store {
	return &Store{log: s.log}
}

// newLogID returns a random, non-zero log identity.
func newLogID() (logstore.LogID, error) {
	var id logstore.LogID
	for id == (logstore.LogID{}) {
		if _, err := rand.Read(id[:]); err != nil {
			return id, fmt.Errorf("memstore: new log id: %w", err)
		}
	}
	return id, nil
}

// check returns ErrClosed after Close and the context's error if ctx is
// done; every method starts with it.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("memstore: %w", logstore.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	return nil
}

// LatestUpdateID returns the highest id ever committed to the log; it does
// not go back when records are dropped or the log is Reset (0 before the
// first commit). Errors: ErrClosed, or the context's.
func (s *Store) LatestUpdateID(ctx context.Context) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.log.latest, nil
}

// ReadUpdates calls fn for every record with low <= id <= high, in
// ascending id order. fn receives a private copy of the contents (valid
// during the call) and is called without the log's lock held, so it may use
// the store. Records are copied out a page at a time: a record committed,
// replaced or dropped during the read is seen in whatever state it has when
// its page is copied. Errors: ErrClosed, the context's (checked between
// pages), or fn's error as is.
func (s *Store) ReadUpdates(ctx context.Context, low, high uint64, fn func(id uint64, contents []byte) error) error {
	for low <= high {
		if err := s.check(ctx); err != nil {
			return err
		}
		page := s.log.copyRange(low, high, readPage)
		if len(page) == 0 {
			return nil
		}
		for _, r := range page {
			if err := fn(r.id, r.contents); err != nil {
				return err
			}
		}
		last := page[len(page)-1].id
		if last == high {
			return nil
		}
		low = last + 1
	}
	return nil
}

// copyRange returns copies of up to max records with low <= id <= high.
func (l *memLog) copyRange(low, high uint64, max int) []record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.copyRangeLocked(low, high, max)
}

// copyRangeLocked is copyRange with the lock held.
func (l *memLog) copyRangeLocked(low, high uint64, max int) []record {
	var out []record
	for i := l.searchLocked(low); i < len(l.recs) && l.recs[i].id <= high && len(out) < max; i++ {
		r := l.recs[i]
		if r.dropped {
			continue
		}
		r.contents = append([]byte(nil), r.contents...)
		out = append(out, r)
	}
	return out
}

// searchLocked returns the index of the first record (live or dropped) with
// an id >= id.
func (l *memLog) searchLocked(id uint64) int {
	return sort.Search(len(l.recs), func(i int) bool { return l.recs[i].id >= id })
}

// findLocked returns the index of the live record with the given id, or -1.
func (l *memLog) findLocked(id uint64) int {
	i := l.searchLocked(id)
	if i == len(l.recs) || l.recs[i].id != id || l.recs[i].dropped {
		return -1
	}
	return i
}

// Commit appends records atomically with consecutive ids after the highest
// id ever committed, under a new nonce, and returns their ids and nonce;
// with no records it commits nothing and returns the latest id. The
// contents are copied. With Options.SingleKeyReplaces, a record with a
// SingleKey (of at most MaxSingleKeySize bytes) drops the previous live
// record with the same SingleKey, including one earlier in the same call.
// Errors (nothing committed): ErrClosed, the context's, ErrLogMismatch
// when expect is set and differs from the log's identity, or ErrTooLarge
// for a record above MaxRecordSize.
func (s *Store) Commit(ctx context.Context, expect logstore.LogID, records []logstore.Record) (logstore.Committed, error) {
	if err := s.check(ctx); err != nil {
		return logstore.Committed{}, err
	}
	l := s.log
	if len(records) == 0 {
		l.mu.Lock()
		defer l.mu.Unlock()
		if err := l.expectLocked(expect); err != nil {
			return logstore.Committed{}, err
		}
		return logstore.Committed{First: l.latest, Last: l.latest}, nil
	}
	nonce, err := logstore.NewNonce()
	if err != nil {
		return logstore.Committed{}, err
	}
	recs := make([]record, len(records))
	for i, r := range records {
		if len(r.Contents) > l.limits.MaxRecordSize {
			return logstore.Committed{}, fmt.Errorf("memstore: record %d of %d bytes above %d: %w",
				i, len(r.Contents), l.limits.MaxRecordSize, logstore.ErrTooLarge)
		}
		recs[i].contents = append([]byte(nil), r.Contents...)
		recs[i].nonce = nonce
		if l.singleKeyReplaces && len(r.SingleKey) > 0 && len(r.SingleKey) <= l.limits.MaxSingleKeySize {
			recs[i].singleKey = string(r.SingleKey)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.expectLocked(expect); err != nil {
		return logstore.Committed{}, err
	}
	first := l.latest + 1
	prev := logstore.Position{ID: l.latest, Nonce: l.latestNonce}
	for _, r := range recs {
		l.latest++
		r.id = l.latest
		if r.singleKey != "" {
			if old, ok := l.singles[r.singleKey]; ok {
				if j := l.findLocked(old); j >= 0 {
					l.dropLocked(j)
				}
			}
			l.singles[r.singleKey] = r.id
		}
		// Appended one by one: a later record of the batch may drop it.
		l.recs = append(l.recs, r)
	}
	l.latestNonce, l.latestTime = nonce, time.Now()
	l.marks = append(l.marks, logstore.Position{ID: l.latest, Nonce: nonce})
	l.purgeLocked()
	return logstore.Committed{First: first, Last: l.latest, Nonce: nonce, Prev: prev}, nil
}

// expectLocked returns ErrLogMismatch when expect is set and is not the
// log's identity.
func (l *memLog) expectLocked(expect logstore.LogID) error {
	if expect != (logstore.LogID{}) && expect != l.info.ID {
		return fmt.Errorf("memstore: commit: log %x, expected %x: %w", l.info.ID, expect, logstore.ErrLogMismatch)
	}
	return nil
}

// Poll delivers, under the log's lock (one consistent snapshot), up to
// req.Max records (readPage when 0) after req.After.ID, and judges
// req.After; see logstore.Store. fn is called after the lock is released,
// with private copies of the contents. Errors: ErrClosed, the context's, or
// fn's as is.
func (s *Store) Poll(ctx context.Context, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	if err := s.check(ctx); err != nil {
		return logstore.PollResult{}, err
	}
	max := req.Max
	if max <= 0 {
		max = readPage
	}
	l := s.log
	l.mu.Lock()
	res := logstore.PollResult{
		Info:       l.info,
		Latest:     logstore.Position{ID: l.latest, Nonce: l.latestNonce},
		LatestTime: l.latestTime,
		Next:       req.After,
	}
	var found bool
	var nonce uint64
	if logstore.NeedsLookup(req.After, res.Latest) {
		found, nonce = l.traceLocked(req.After.ID)
	}
	res.Verdict = logstore.Judge(req.After, res.Latest, l.info.Horizon, found, nonce)
	page := l.copyRangeLocked(req.After.ID+1, l.latest, max+1)
	l.mu.Unlock()
	if len(page) > max {
		page, res.More = page[:max], true
	}
	for _, r := range page {
		if err := fn(logstore.Entry{ID: r.id, Nonce: r.nonce, Contents: r.contents}); err != nil {
			return res, err
		}
		res.Next = logstore.Position{ID: r.id, Nonce: r.nonce}
	}
	return res, nil
}

// traceLocked returns the nonce of the live record or mark with the
// smallest id >= id.
func (l *memLog) traceLocked(id uint64) (found bool, nonce uint64) {
	best := uint64(0)
	if i := l.searchLocked(id); i < len(l.recs) {
		for ; i < len(l.recs); i++ {
			if !l.recs[i].dropped {
				best, nonce, found = l.recs[i].id, l.recs[i].nonce, true
				break
			}
		}
	}
	j := sort.Search(len(l.marks), func(j int) bool { return l.marks[j].ID >= id })
	if j < len(l.marks) && (!found || l.marks[j].ID < best) {
		return true, l.marks[j].Nonce
	}
	return found, nonce
}

// dropLocked removes the live record at index i. It leaves a tombstone, so
// indexes stay valid; purgeLocked removes tombstones in bulk.
func (l *memLog) dropLocked(i int) {
	r := &l.recs[i]
	if r.singleKey != "" && l.singles[r.singleKey] == r.id {
		delete(l.singles, r.singleKey)
	}
	*r = record{id: r.id, dropped: true}
	l.dead++
}

// purgeLocked removes the tombstones once they are more than half of recs,
// so that dropping costs amortized constant time.
func (l *memLog) purgeLocked() {
	if l.dead < 64 || 2*l.dead < len(l.recs) {
		return
	}
	live := l.recs[:0]
	for _, r := range l.recs {
		if !r.dropped {
			live = append(live, r)
		}
	}
	clear(l.recs[len(live):])
	l.recs, l.dead = live, 0
}

// Info returns the log identity and compaction horizon. Errors: ErrClosed,
// or the context's.
func (s *Store) Info(ctx context.Context) (logstore.Info, error) {
	if err := s.check(ctx); err != nil {
		return logstore.Info{}, err
	}
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.log.info, nil
}

// Reset deletes every record, gives the log a new random identity and sets
// the horizon to 0; ids continue above the highest id ever committed.
// Errors: ErrClosed, the context's, or a failure of the random source (the
// log is then unchanged).
func (s *Store) Reset(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	id, err := newLogID()
	if err != nil {
		return err
	}
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	l.info = logstore.Info{ID: id}
	l.recs, l.dead = nil, 0
	l.singles = make(map[string]uint64)
	l.marks, l.latestNonce = nil, 0
	return nil
}

// Backup returns a copy of the log as it is now. Restore puts it back, with
// its identity: the log then goes backwards as a log restored from a
// backup does. For tests of readers facing such a log.
func (s *Store) Backup() *Backup {
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &Backup{info: l.info, latest: l.latest, latestNonce: l.latestNonce, dead: l.dead,
		recs: append([]record(nil), l.recs...), marks: append([]logstore.Position(nil), l.marks...),
		singles: make(map[string]uint64, len(l.singles))}
	for k, v := range l.singles {
		b.singles[k] = v
	}
	return b
}

// Backup is a copy of a log made by Store.Backup.
type Backup struct {
	info        logstore.Info
	latest      uint64
	latestNonce uint64
	latestTime  time.Time
	recs        []record
	dead        int
	singles     map[string]uint64
	marks       []logstore.Position
}

// Restore replaces the log's whole contents (identity, ids, records) with
// the backup's, as restoring a backup does.
func (s *Store) Restore(b *Backup) {
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	l.info, l.latest, l.latestNonce, l.dead = b.info, b.latest, b.latestNonce, b.dead
	l.recs = append([]record(nil), b.recs...)
	l.marks = append([]logstore.Position(nil), b.marks...)
	l.singles = make(map[string]uint64, len(b.singles))
	for k, v := range b.singles {
		l.singles[k] = v
	}
}

// Limits returns the sizes the log accepts. It works after Close.
func (s *Store) Limits() logstore.Limits {
	return s.log.limits
}

// Close marks this handle closed; other handles on the log stay usable.
// Every later call, including a second Close, returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("memstore: %w", logstore.ErrClosed)
	}
	return nil
}

// Check verifies the log's invariants and returns an error describing the
// first one broken. It is meant for tests.
func (s *Store) Check() error {
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	indexed, dead := 0, 0
	for i, r := range l.recs {
		if r.id == 0 || r.id > l.latest || (i > 0 && l.recs[i-1].id >= r.id) {
			return fmt.Errorf("memstore: record %d has id %d out of order (latest %d)", i, r.id, l.latest)
		}
		if r.dropped {
			dead++
		}
		if r.singleKey != "" {
			indexed++
			if l.singles[r.singleKey] != r.id {
				return fmt.Errorf("memstore: record %d is not the indexed record for its key", r.id)
			}
		}
	}
	if indexed != len(l.singles) || (!l.singleKeyReplaces && indexed != 0) {
		return fmt.Errorf("memstore: %d indexed records, %d index entries", indexed, len(l.singles))
	}
	if dead != l.dead {
		return fmt.Errorf("memstore: %d tombstones, counted %d", dead, l.dead)
	}
	for i, m := range l.marks {
		if m.ID == 0 || m.ID > l.latest || m.Nonce == 0 || (i > 0 && l.marks[i-1].ID >= m.ID) {
			return fmt.Errorf("memstore: mark %d (%+v) out of order or zero", i, m)
		}
	}
	if n := len(l.marks); n > 0 && (l.marks[n-1].ID != l.latest || l.marks[n-1].Nonce != l.latestNonce) {
		return fmt.Errorf("memstore: last mark %+v is not the latest commit (%d, %x)", l.marks[n-1], l.latest, l.latestNonce)
	}
	if l.info.ID == (logstore.LogID{}) {
		return fmt.Errorf("memstore: zero log id")
	}
	return nil
}
