package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/whycache/whycache/logstore"
)

// Limits returns the sizes the store accepts: records up to the smaller of
// a MEDIUMBLOB (16 MiB - 1) and the server's max_allowed_packet less the
// statement overhead; single keys up to 1024 bytes. The first call asks
// the server for max_allowed_packet (waiting up to 5 s) unless the options
// gave it; if the server cannot be asked, it assumes 4 MiB and asks again
// next time.
func (s *Store) Limits() logstore.Limits {
	ctx, cancel := context.WithTimeout(context.Background(), limitsDeadline*time.Second)
	defer cancel()
	p, err := s.serverPacket(ctx)
	if err != nil {
		p = fallbackMaxAllowedPacket
	}
	return limitsFor(p)
}

// LatestUpdateID returns the highest id committed so far. In Python mode
// it is the table's MAX(id), and ids below it may still commit (their
// inserts still open): readers use Poll, which waits for them. In Go mode
// it is next_id - 1 from the meta row, read in autocommit from the read
// pool (Options.ReadDB, else the primary), so every record up to it that
// still exists is visible to a read of that pool that starts afterwards.
// It never writes (it works on a replica). Errors: ErrNoLog when the meta row or
// table is missing, ErrCorrupt for next_id 0, ErrClosed, the context's,
// the server's.
func (s *Store) LatestUpdateID(ctx context.Context) (uint64, error) {
	if err := s.checkUsable(ctx); err != nil {
		return 0, err
	}
	if s.py != nil {
		return s.pyLatest(ctx)
	}
	var next uint64
	err := s.rdb.QueryRowContext(ctx, s.q.latest).Scan(&next)
	switch {
	case isMissing(err):
		return 0, s.noLog(ctx, s.rdb, "latest update id", err)
	case err != nil:
		return 0, fmt.Errorf("mysqlstore: latest update id: %w", err)
	case next == 0:
		return 0, fmt.Errorf("mysqlstore: meta row of %s has next_id 0: %w", s.table, logstore.ErrCorrupt)
	}
	return next - 1, nil
}

// Info returns the log identity and compaction horizon from the meta row
// of the read pool (Options.ReadDB, else the primary). It never writes (it
// works on a replica). Errors: ErrNoLog when the meta row or table is
// missing, ErrCorrupt for a malformed identity, ErrClosed, the context's,
// the server's.
func (s *Store) Info(ctx context.Context) (logstore.Info, error) {
	if err := s.checkUsable(ctx); err != nil {
		return logstore.Info{}, err
	}
	return s.info(ctx, s.rdb)
}

// info is Info read from db (in Python mode, the derived identity).
func (s *Store) info(ctx context.Context, db *sql.DB) (logstore.Info, error) {
	if s.py != nil {
		return s.pyInfo(ctx)
	}
	var in logstore.Info
	var id []byte
	err := db.QueryRowContext(ctx, s.q.info).Scan(&id, &in.Horizon)
	switch {
	case isMissing(err):
		return in, s.noLog(ctx, db, "info", err)
	case err != nil:
		return in, fmt.Errorf("mysqlstore: info: %w", err)
	}
	if in.ID, err = s.decodeLogID(id); err != nil {
		return logstore.Info{}, fmt.Errorf("mysqlstore: info: %w", err)
	}
	return in, nil
}

// decodeLogID converts the log_id column; a wrong length or the zero identity
// is ErrCorrupt.
func (s *Store) decodeLogID(b []byte) (logstore.LogID, error) {
	var id logstore.LogID
	if len(b) != len(id) {
		return id, fmt.Errorf("meta row of %s has a log id of %d bytes: %w", s.table, len(b), logstore.ErrCorrupt)
	}
	copy(id[:], b)
	if id == (logstore.LogID{}) {
		return id, fmt.Errorf("meta row of %s has the zero log id: %w", s.table, logstore.ErrCorrupt)
	}
	return id, nil
}

// ReadUpdates calls fn for every record with low <= id <= high in
// ascending id order, from the read pool (Options.ReadDB, else the
// primary). It reads pages of PageRows rows in autocommit
// (WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?), buffers each page and
// calls fn with no connection held, so fn may call into this or any other
// store. contents is valid only during the call. An error from fn is
// returned as is; ctx is checked between pages and records.
func (s *Store) ReadUpdates(ctx context.Context, low, high uint64, fn func(id uint64, contents []byte) error) error {
	if err := s.checkUsable(ctx); err != nil {
		return err
	}
	if s.py != nil {
		if err := s.pyReady(ctx, "read updates"); err != nil {
			return err
		}
		fn = s.pyFramed("read updates", fn)
	}
	return s.readRange(ctx, low, high, fn)
}

// readRange is ReadUpdates without the checks.
func (s *Store) readRange(ctx context.Context, low, high uint64, fn func(id uint64, contents []byte) error) error {
	r := s.newPager(low, high)
	for {
		n, err := r.next(ctx, s, s.rdb)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		for i := range n {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("mysqlstore: read updates: %w", err)
			}
			if err := fn(r.ids[i], r.contents(i)); err != nil {
				return err
			}
		}
	}
}

// querier runs queries: the pool, or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// pager reads a range of records page by page into a reused buffer.
type pager struct {
	low, high uint64 // ids still to read; done when low > high
	limit     int    // rows to ask for next
	ids       []uint64
	ends      []int // ends[i] is the end of record i in data
	data      []byte
}

// newPager returns a pager over [low, high]. Ids never exceed MaxInt64
// (the counter is read through LAST_INSERT_ID), so high is clamped there.
func (s *Store) newPager(low, high uint64) *pager {
	return &pager{low: max(low, 1), high: min(high, math.MaxInt64), limit: s.opts.PageRows}
}

// contents returns record i of the current page.
func (r *pager) contents(i int) []byte {
	start := 0
	if i > 0 {
		start = r.ends[i-1]
	}
	return r.data[start:r.ends[i]:r.ends[i]]
}

// next fetches the next page and returns its number of records, 0 at the
// end of the range. A page stops early once it buffers PageBytes; the
// following pages then ask for fewer rows, and grow back when they are
// small again.
func (r *pager) next(ctx context.Context, s *Store, q querier) (int, error) {
	r.ids, r.ends, r.data = r.ids[:0], r.ends[:0], r.data[:0]
	if r.low > r.high {
		return 0, nil
	}
	asked := r.limit
	rows, err := q.QueryContext(ctx, s.q.page, r.low, r.high, asked)
	if isMissing(err) {
		return 0, s.noLog(ctx, q, "read updates", err)
	}
	if err != nil {
		return 0, fmt.Errorf("mysqlstore: read records %d..%d: %w", r.low, r.high, err)
	}
	full := false
	for rows.Next() {
		var id uint64
		var c sql.RawBytes
		if err := rows.Scan(&id, &c); err != nil {
			rows.Close()
			return 0, fmt.Errorf("mysqlstore: read records: %w", err)
		}
		if len(r.ids) > 0 && id <= r.ids[len(r.ids)-1] || id < r.low || id > r.high {
			rows.Close()
			return 0, fmt.Errorf("mysqlstore: server returned record %d out of order: %w", id, logstore.ErrCorrupt)
		}
		r.ids = append(r.ids, id)
		r.data = append(r.data, c...)
		r.ends = append(r.ends, len(r.data))
		if len(r.data) >= s.opts.PageBytes && len(r.ids) < asked {
			full = true
			break
		}
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("mysqlstore: read records: %w", err)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("mysqlstore: read records: %w", err)
	}
	n := len(r.ids)
	switch {
	case full:
		r.limit = max(n, 1)
	case n == asked && len(r.data) < s.opts.PageBytes/2:
		r.limit = min(2*asked, s.opts.PageRows)
	}
	if n == 0 || (!full && n < asked) {
		r.low = r.high + 1 // the range is exhausted
	} else if last := r.ids[n-1]; last >= r.high {
		r.low = r.high + 1
	} else {
		r.low = last + 1
	}
	return n, nil
}
