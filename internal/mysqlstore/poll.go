package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/whycache/whycache/logstore"
)

// pollPage is what one Poll statement returned.
type pollPage struct {
	metaFound         bool
	next, latestNonce uint64
	horizon, latestUS uint64
	logID             []byte

	rowFound, markFound bool // the lowest row / mark at or above the position
	rowID, rowNonce     uint64
	markID, markNonce   uint64

	latestMarkN uint64 // the nonce of the mark at the latest id, 0 when there is none

	heartbeatUS uint64 // the meta row's heartbeat

	ids, nonces []uint64
	ends        []int // ends[i] is the end of record i in data
	data        []byte
	got         int  // records the statement returned, buffered or not
	cut         bool // records were left out to stay within PageBytes
}

// Poll reads, with one SELECT statement (one InnoDB read view, one round
// trip; prepared once per connection; a second, itself a whole poll in a
// view of its own, only where pollQuery says) on the read pool (Options.ReadDB,
// or the primary when there is none or req.Primary is set), the meta row
// (with the last heartbeat: PollResult.Heartbeat), the mark at the latest
// id (the latest position has a nonce only when that mark's matches the
// meta row's), the trace the verdict on req.After needs (the lowest row
// and mark at or above req.After.ID, looked up only when
// logstore.NeedsLookup says so; a trace without a nonce checks the
// position by id only) and up to req.Max records (PageRows when 0 or larger) with req.After.ID < id <= the latest
// id of the same view; see logstore.Store. A page stops early once it
// buffers PageBytes of contents (at least one record is delivered); More
// is then set and the next calls ask for fewer rows. fn is called after
// the statement's rows are read and the whole result (Info, Latest,
// LatestTime, Verdict, More) is settled, with no connection held;
// contents are valid only during the call. An error from fn stops the
// delivery and is returned as is, with that result and Next = the
// position of the last entry fn accepted. Poll never writes.
//
// A poll of the read pool checks the identity it shows against the
// primary's (see Options.ReadDB) before fn is called.
//
// PollResult.ReadTime is the server's clock carried forward from a
// reading that a poll that shows a heartbeat makes with a second
// statement once a minute (see readTime): the Poll statement itself reads
// nothing that changes without a write, so a server with the query cache
// on can answer it from there.
//
// Errors: ErrNoLog when the tables or the meta row are missing (the
// message says why, and names a table in Python whycache's layout),
// ErrReplicaMismatch when the read pool holds another log than the
// primary,
// ErrCorrupt for a damaged meta row, ErrClosed, the context's, the
// server's, or fn's as is.
func (s *Store) Poll(ctx context.Context, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	if err := s.checkUsable(ctx); err != nil {
		return logstore.PollResult{}, err
	}
	if s.py != nil {
		return s.pyPoll(ctx, req, fn)
	}
	limit := s.pollLimit()
	if req.Max > 0 && req.Max < limit {
		limit = req.Max
	}
	db := s.rdb
	if req.Primary {
		db = s.db
	}
	p, err := s.pollQuery(ctx, db, req.After, limit)
	if err != nil {
		return logstore.PollResult{}, err
	}
	res := logstore.PollResult{
		Latest: logstore.Position{ID: p.next - 1},
		Next:   req.After,
		More:   p.cut || p.got > limit,
	}
	// The meta row's latest nonce is the latest commit's only if that
	// commit left the mark at the latest id: a writer of an earlier
	// version (during a rolling upgrade) advances the counter without a
	// nonce or a mark. (With no mark there, latestMarkN is 0, and equals
	// latestNonce only when that is 0 too, which sets nothing.)
	if p.latestMarkN == p.latestNonce {
		res.Latest.Nonce = p.latestNonce
	}
	res.Info.Horizon = p.horizon
	if res.Info.ID, err = s.decodeLogID(p.logID); err != nil {
		return logstore.PollResult{}, fmt.Errorf("mysqlstore: poll: %w", err)
	}
	res.LatestTime = microTime(p.latestUS)
	res.Heartbeat = microTime(p.heartbeatUS)
	if res.ReadTime, err = s.readTime(ctx, db, p.heartbeatUS); err != nil {
		return logstore.PollResult{}, s.pollError(ctx, db, err)
	}
	if db != s.db {
		if err := s.checkReplica(ctx, res.Info.ID); err != nil {
			return logstore.PollResult{}, err
		}
	}
	found, nonce := p.rowFound, p.rowNonce
	if p.markFound && (!found || p.markID < p.rowID) {
		found, nonce = true, p.markNonce
	}
	after := req.After
	if found && nonce == 0 {
		// The trace was written without a nonce (before the upgrade that
		// added them, or by a writer of an earlier version): the position
		// is checked by id only (see logstore's package documentation).
		after.Nonce = 0
	}
	res.Verdict = logstore.Judge(after, res.Latest, res.Info.Horizon, found, nonce)
	s.pollAdapt(p, limit)
	n := min(len(p.ids), limit)
	for i := range n {
		start := 0
		if i > 0 {
			start = p.ends[i-1]
		}
		e := logstore.Entry{ID: p.ids[i], Nonce: p.nonces[i], Contents: p.data[start:p.ends[i]:p.ends[i]]}
		if err := fn(e); err != nil {
			return res, err
		}
		res.Next = e.Position()
	}
	return res, nil
}

// microTime converts microseconds since 1970 UTC; 0 (unknown) and values
// out of range are the zero time.
func microTime(us uint64) time.Time {
	if us == 0 || us > math.MaxInt64 {
		return time.Time{}
	}
	return time.UnixMicro(int64(us))
}

// pollLimit returns the rows the next Poll asks for.
func (s *Store) pollLimit() int {
	if n := s.pollN.Load(); n > 0 {
		return int(n)
	}
	return s.opts.PageRows
}

// pollAdapt sets the rows later polls ask for: as many as fitted in
// PageBytes after a page was cut, and twice as many (up to PageRows) after
// a full page of less than half PageBytes.
func (s *Store) pollAdapt(p *pollPage, limit int) {
	switch {
	case p.cut:
		s.pollN.Store(int64(max(len(p.ids), 1)))
	case p.got > limit && len(p.data) < s.opts.PageBytes/2 && limit < s.opts.PageRows:
		s.pollN.Store(int64(min(2*limit, s.opts.PageRows)))
	}
}

// pollQuery runs a Poll statement on db for the records after after, at
// most limit+1 of them (the extra one tells that there are more).
//
// The statement is pollJoin, unless the last poll found no row at or
// above its position; pollFull, a whole poll again in a view of its own,
// follows when pollJoin returned no row (no log row at or above the
// position below the latest id: an empty log, a position ahead of the
// log, or compaction removed the position's row and nothing came after
// it) or when the verdict needs the trace of after and compaction removed
// after's own row (see the statements' comment in sql.go). A poll that
// delivers records goes back to pollJoin, whose position then has a row.
func (s *Store) pollQuery(ctx context.Context, db *sql.DB, after logstore.Position, limit int) (*pollPage, error) {
	// Judge needs the lookup only below the latest id, which pollRead
	// compares with the meta row; ids never exceed MaxInt64 (the counter
	// goes through LAST_INSERT_ID), so a position above cannot need it.
	lookup := after.ID != 0 && after.Nonce != 0 && after.ID < math.MaxInt64
	if !s.pollWide.Load() {
		p, err := s.pollRun(ctx, db, s.q.pollJoin, func(rows *sql.Rows, p *pollPage) error {
			return s.pollReadJoin(rows, p, after.ID, lookup)
		}, after.ID, after.ID, limit+2)
		switch {
		case err != nil:
			return nil, err
		case !p.metaFound:
			s.pollWide.Store(true)
		case !lookup || after.ID+1 >= p.next || (p.rowFound && p.rowID == after.ID):
			return p, nil
		}
	}
	from, n := min(after.ID, math.MaxUint64-1)+1, limit+1
	if lookup {
		from, n = after.ID, limit+2
	}
	p, err := s.pollRun(ctx, db, s.q.pollFull, func(rows *sql.Rows, p *pollPage) error {
		return s.pollRead(rows, p, after.ID, lookup)
	}, after.ID, after.ID, from, n)
	switch {
	case err != nil:
		return nil, err
	case !p.metaFound:
		return nil, s.noLog(ctx, db, "poll", sql.ErrNoRows)
	case p.got > 0:
		s.pollWide.Store(false)
	}
	return p, nil
}

// pollRun runs one of the Poll statements with args and reads its rows
// with read. The page it returns has metaFound unset when no row came.
func (s *Store) pollRun(ctx context.Context, db *sql.DB, query string, read func(*sql.Rows, *pollPage) error, args ...any) (*pollPage, error) {
	st, err := s.prepared(ctx, db, query)
	if err != nil {
		return nil, s.pollError(ctx, db, err)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, s.pollError(ctx, db, err)
	}
	p := &pollPage{}
	if err := read(rows, p); err != nil {
		rows.Close()
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, s.pollError(ctx, db, err)
	}
	if err := rows.Err(); err != nil {
		return nil, s.pollError(ctx, db, err)
	}
	if p.metaFound && p.next == 0 {
		return nil, fmt.Errorf("mysqlstore: poll: meta row of %s has next_id 0: %w", s.table, logstore.ErrCorrupt)
	}
	return p, nil
}

// pollRead reads the rows of the pollFull statement into p:
// the meta row comes first (the branches of a UNION ALL are sent in
// order), then the mark, then the log rows from the position on in id
// order (see record).
func (s *Store) pollRead(rows *sql.Rows, p *pollPage, after uint64, lookup bool) error {
	early := false
	for rows.Next() {
		var kind int
		var id, nonce, horizon, us, heartbeat, markNonce uint64
		var blob sql.RawBytes
		if err := rows.Scan(&kind, &id, &nonce, &horizon, &us, &blob, &heartbeat, &markNonce); err != nil {
			return fmt.Errorf("mysqlstore: poll: %w", err)
		}
		if kind != pollKindMeta && !p.metaFound {
			early = true // without a meta row the log is missing (pollQuery)
			continue
		}
		switch kind {
		case pollKindMeta:
			if early {
				return fmt.Errorf("mysqlstore: poll: server returned rows before the meta row: %w", logstore.ErrCorrupt)
			}
			p.meta(id, nonce, horizon, us, blob, heartbeat, markNonce)
		case pollKindMark:
			p.markFound, p.markID, p.markNonce = true, id, nonce
		case pollKindRecord:
			if err := p.record(id, nonce, blob, after, lookup, s.opts.PageBytes); err != nil {
				return err
			}
		default:
			return fmt.Errorf("mysqlstore: poll: row of unknown kind %d", kind)
		}
	}
	p.keepTraces(after, lookup)
	return nil
}

// pollReadJoin reads the rows of the pollJoin statement into p: each is
// a log row from the position on, in id order, with the meta row's
// columns in front (see record).
func (s *Store) pollReadJoin(rows *sql.Rows, p *pollPage, after uint64, lookup bool) error {
	for rows.Next() {
		var next, latestNonce, horizon, us, heartbeat, markNonce, id, nonce uint64
		var logID, blob sql.RawBytes
		if err := rows.Scan(&next, &latestNonce, &horizon, &us, &logID, &heartbeat, &markNonce, &id, &nonce, &blob); err != nil {
			return fmt.Errorf("mysqlstore: poll: %w", err)
		}
		if !p.metaFound {
			p.meta(next, latestNonce, horizon, us, logID, heartbeat, markNonce)
		}
		if err := p.record(id, nonce, blob, after, lookup, s.opts.PageBytes); err != nil {
			return err
		}
	}
	p.keepTraces(after, lookup)
	return nil
}

// meta takes the meta row's columns.
func (p *pollPage) meta(next, latestNonce, horizon, latestUS uint64, logID []byte, heartbeatUS, latestMarkN uint64) {
	p.metaFound = true
	p.next, p.latestNonce, p.horizon, p.latestUS = next, latestNonce, horizon, latestUS
	p.logID = append(p.logID[:0], logID...)
	p.heartbeatUS, p.latestMarkN = heartbeatUS, latestMarkN
}

// record takes one log row of a Poll statement, at or above the position
// after: with lookup, the first is the lowest row at or above after, its
// trace; the position's own row is not a record; rows at or above the
// meta row's next_id are dropped.
func (p *pollPage) record(id, nonce uint64, blob []byte, after uint64, lookup bool, pageBytes int) error {
	if lookup && !p.rowFound {
		p.rowFound, p.rowID, p.rowNonce = true, id, nonce
	}
	if id == after || id >= p.next {
		return nil
	}
	return p.add(id, nonce, blob, after, pageBytes)
}

// keepTraces keeps the traces only when after + 1 < next_id (see the
// statements' comment in sql.go).
func (p *pollPage) keepTraces(after uint64, lookup bool) {
	if !lookup || after+1 >= p.next {
		p.rowFound, p.markFound = false, false
	}
}

// add takes one record row of a Poll statement: it must come after the
// position and the rows before it; it is buffered unless the page already
// holds pageBytes (the page is then cut).
func (p *pollPage) add(id, nonce uint64, blob []byte, after uint64, pageBytes int) error {
	p.got++
	if n := len(p.ids); id <= after || (n > 0 && id <= p.ids[n-1]) {
		return fmt.Errorf("mysqlstore: poll: server returned record %d out of order: %w", id, logstore.ErrCorrupt)
	}
	if p.cut || (len(p.ids) > 0 && len(p.data) >= pageBytes) {
		p.cut = true
		return nil
	}
	p.ids = append(p.ids, id)
	p.nonces = append(p.nonces, nonce)
	p.data = append(p.data, blob...)
	p.ends = append(p.ends, len(p.data))
	return nil
}

// pollError maps an error of the Poll statement on db: missing tables or
// columns are ErrNoLog, a statement closed by Close is ErrClosed.
func (s *Store) pollError(ctx context.Context, db *sql.DB, err error) error {
	switch {
	case isMissing(err):
		return s.noLog(ctx, db, "poll", err)
	case errors.Is(err, logstore.ErrClosed):
		return err
	case s.closed.Load():
		return fmt.Errorf("mysqlstore: poll: %w (%v)", logstore.ErrClosed, err)
	}
	return fmt.Errorf("mysqlstore: poll: %w", err)
}
