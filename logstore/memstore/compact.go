package memstore

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	"github.com/whycache/whycache/logstore"
)

// Compact passes every live record with id <= limit to fn, in ascending id
// order, and keeps, replaces or drops it as fn says; ids never change. If
// horizon is above the current horizon, the horizon is raised first. fn gets
// a private copy of the contents and runs without the log's lock held, so
// commits, reads and other handles proceed while it runs; each replacement
// or drop is applied atomically under the lock. A record that disappears
// (dropped as a replaced single key, or by Reset) or is replaced by a
// concurrent Compact while fn looks at it is left alone.
//
// The stats count the records passed to fn and what is left of them.
// Errors stop the pass, leaving the records already handled as fn decided:
// ErrClosed or the context's (checked before each record), fn's error as is,
// or ErrTooLarge when fn returns contents above MaxRecordSize (that record
// stays unchanged).
func (s *Store) Compact(ctx context.Context, limit, horizon uint64, fn logstore.CompactFunc) (logstore.CompactStats, error) {
	var stats logstore.CompactStats
	if err := s.check(ctx); err != nil {
		return stats, err
	}
	l := s.log
	l.mu.Lock()
	if horizon > l.info.Horizon {
		l.info.Horizon = horizon
		l.pruneMarksLocked()
	}
	l.mu.Unlock()
	for next := uint64(1); next <= limit; {
		if err := s.check(ctx); err != nil {
			return stats, err
		}
		r, ok := l.copyNext(next, limit)
		if !ok {
			break
		}
		newContents, keep, err := fn(r.id, r.contents)
		if err != nil {
			return stats, err
		}
		if keep && len(newContents) > l.limits.MaxRecordSize {
			return stats, fmt.Errorf("memstore: compacted record %d of %d bytes above %d: %w",
				r.id, len(newContents), l.limits.MaxRecordSize, logstore.ErrTooLarge)
		}
		stats.RecordsBefore++
		stats.BytesBefore += uint64(len(r.contents))
		if keep {
			stats.RecordsAfter++
			stats.BytesAfter += uint64(len(newContents))
		}
		l.apply(r, newContents, keep)
		if r.id == limit {
			break
		}
		next = r.id + 1
	}
	return stats, nil
}

// copyNext returns a copy of the first live record with next <= id <= limit.
func (l *memLog) copyNext(next, limit uint64) (record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := l.searchLocked(next); i < len(l.recs) && l.recs[i].id <= limit; i++ {
		if r := l.recs[i]; !r.dropped {
			r.contents = append([]byte(nil), r.contents...)
			return r, true
		}
	}
	return record{}, false
}

// apply carries out fn's decision for r, unless the record changed since r
// was copied.
func (l *memLog) apply(r record, newContents []byte, keep bool) {
	if keep && bytes.Equal(newContents, r.contents) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i := l.findLocked(r.id)
	if i < 0 || l.recs[i].gen != r.gen {
		return
	}
	if !keep {
		l.dropLocked(i)
		l.purgeLocked()
		return
	}
	l.recs[i].contents = append([]byte(nil), newContents...)
	l.recs[i].gen++
}

// pruneMarksLocked drops the marks of commits that end below the horizon
// (readers there rebuild), keeping the latest commit's.
func (l *memLog) pruneMarksLocked() {
	keep := sort.Search(len(l.marks), func(j int) bool { return l.marks[j].ID >= l.info.Horizon })
	keep = min(keep, max(len(l.marks)-1, 0))
	l.marks = append(l.marks[:0:0], l.marks[keep:]...)
}
