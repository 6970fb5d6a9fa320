package mysqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/logstore"
)

// pyRecord is a record re-encoded in the Python framing, with the single
// key its row gets.
type pyRecord struct {
	contents, key []byte
}

// toPython re-encodes a record (in either framing) in the Python framing.
// A set of an empty value cannot be expressed there (Python reads it as a
// delete): the error wraps logstore.ErrNotRepresentable.
func toPython(contents []byte) ([]byte, error) {
	if !isGoFramed(contents) {
		if _, err := logstore.RecordItemCount(contents); err != nil {
			return nil, err
		}
		return contents, nil
	}
	var items []logstore.Item
	if err := logstore.DecodeRecord(contents, func(it logstore.Item) error {
		items = append(items, it)
		return nil
	}); err != nil {
		return nil, err
	}
	return logstore.AppendPythonRecord(make([]byte, 0, len(contents)+8*len(items)), items)
}

// pyCommit is Commit in Python mode: the records, re-encoded in the
// Python framing, are written by one multi-row REPLACE INTO t
// (single_key, contents) in autocommit, as Python writes one record:
// the table's AUTO_INCREMENT gives the ids, and a single-key record
// removes the older row of its key. One statement of a "simple insert"
// gets consecutive ids under innodb_autoinc_lock_mode 0 or 1 (MariaDB's
// default); with mode 2 a commit of several records is refused. Every
// record is encoded and checked before anything is sent: an empty value
// fails with ErrNotRepresentable, a commit that does not fit one
// statement with ErrTooLarge (a single record always goes). Deadlocks and lock wait timeouts are
// retried (the failed statement left nothing). Nonce is 0 and Prev is
// (First-1, nonce 0): a writer whose state is at First-1 holds every id
// below First, so it may apply the records from memory.
func (s *Store) pyCommit(ctx context.Context, expect logstore.LogID, records []logstore.Record) (logstore.Committed, error) {
	if err := s.pyReady(ctx, "commit"); err != nil {
		return logstore.Committed{}, err
	}
	id, err := s.pyIdentity(ctx)
	if err != nil {
		return logstore.Committed{}, err
	}
	if expect != (logstore.LogID{}) && expect != id {
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: log %x, expected %x: %w", id[:], expect[:], logstore.ErrLogMismatch)
	}
	if len(records) == 0 {
		latest, err := s.pyLatest(ctx)
		return logstore.Committed{First: latest, Last: latest}, err
	}
	packet, err := s.serverPacket(ctx)
	if err != nil {
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %w", err)
	}
	recs, cost, err := s.pyRecords(records, limitsFor(packet).MaxRecordSize)
	if err != nil {
		return logstore.Committed{}, err
	}
	if budget := s.statementBudget(packet); len(recs) > 1 && cost > budget {
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %d records need a statement of about %d bytes, above %d (Python mode commits in one statement; max_allowed_packet): %w",
			len(recs), cost, budget, logstore.ErrTooLarge)
	}
	if len(recs) > 1 {
		if err := s.pyConsecutive(ctx); err != nil {
			return logstore.Committed{}, err
		}
	}
	var b strings.Builder
	b.WriteString(s.py.replaceHead)
	args := make([]any, 0, 2*len(recs))
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?)")
		args = append(args, r.key, r.contents)
	}
	var first int64
	err = s.retry(ctx, func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, b.String(), args...)
		if err != nil {
			return err
		}
		first, err = res.LastInsertId()
		return err
	})
	switch {
	case err != nil && (errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn)):
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %w: the connection failed during the REPLACE (%v); a later Poll shows whether the records are in the log", ErrCommitUnknown, err)
	case err != nil:
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: %w", err)
	case first <= 0:
		return logstore.Committed{}, fmt.Errorf("mysqlstore: commit: the server returned no AUTO_INCREMENT id for the REPLACE into %s", s.table)
	}
	c := logstore.Committed{First: uint64(first), Last: uint64(first) + uint64(len(recs)) - 1}
	c.Prev = logstore.Position{ID: c.First - 1}
	return c, nil
}

// pyRecords re-encodes records in the Python framing and sums their cost
// in a statement. A record's single key is kept only on the last record
// of the commit with that key (a REPLACE row would remove an earlier row
// of the same statement, leaving a hole in the commit's ids).
func (s *Store) pyRecords(records []logstore.Record, maxRecord int) ([]pyRecord, int, error) {
	out := make([]pyRecord, len(records))
	last := map[string]int{}
	cost := 0
	for i, r := range records {
		if len(r.Contents) > maxRecord {
			return nil, 0, fmt.Errorf("mysqlstore: commit: record %d of %d bytes is above %d: %w", i+1, len(r.Contents), maxRecord, logstore.ErrTooLarge)
		}
		c, err := toPython(r.Contents)
		if err != nil {
			return nil, 0, fmt.Errorf("mysqlstore: commit: record %d of %d: %w", i+1, len(records), err)
		}
		if len(c) > maxRecord {
			return nil, 0, fmt.Errorf("mysqlstore: commit: record of %d bytes in the Python framing is above %d: %w", len(c), maxRecord, logstore.ErrTooLarge)
		}
		out[i].contents = c
		if len(r.SingleKey) > 0 && len(r.SingleKey) <= maxSingleKey {
			if j, ok := last[string(r.SingleKey)]; ok {
				out[j].key = nil
			}
			last[string(r.SingleKey)] = i
			out[i].key = r.SingleKey
		}
		cost += rowCost(out[i].key, c)
	}
	return out, cost, nil
}

// pyConsecutive returns an error unless the server gives one multi-row
// statement consecutive AUTO_INCREMENT ids (innodb_autoinc_lock_mode 0 or
// 1). The mode is read once.
func (s *Store) pyConsecutive(ctx context.Context) error {
	mode := s.py.autoincMode.Load() - 1
	if mode < 0 {
		if err := s.db.QueryRowContext(ctx, "SELECT @@global.innodb_autoinc_lock_mode").Scan(&mode); err != nil {
			return fmt.Errorf("mysqlstore: commit: innodb_autoinc_lock_mode: %w", err)
		}
		s.py.autoincMode.Store(mode + 1)
	}
	if mode >= 2 {
		return fmt.Errorf("mysqlstore: commit: innodb_autoinc_lock_mode is %d, so one statement of several records may get ids another writer interleaves; commit one record at a time (SetMulti within MaxUpdateSize): %w",
			mode, logstore.ErrNotRepresentable)
	}
	return nil
}

// pyCompactFunc wraps a CompactFunc so that the records it rewrites are
// stored in the Python framing; a replacement above maxRecord bytes in
// either framing is ErrTooLarge.
func pyCompactFunc(fn logstore.CompactFunc, maxRecord int) logstore.CompactFunc {
	return func(id uint64, contents []byte) ([]byte, bool, error) {
		out, keep, err := fn(id, contents)
		if err != nil || !keep || !isGoFramed(out) {
			return out, keep, err
		}
		if len(out) > maxRecord {
			return nil, false, fmt.Errorf("mysqlstore: compacted record %d of %d bytes is above %d: %w", id, len(out), maxRecord, logstore.ErrTooLarge)
		}
		if out, err = toPython(out); err != nil {
			return nil, false, fmt.Errorf("mysqlstore: compact: record %d: %w", id, err)
		}
		return out, true, nil
	}
}
