package mysqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/whycache/whycache/logstore"
)

// compactRow is one decision of a CompactFunc, with the length and
// CRC-32 of the contents it was made on.
type compactRow struct {
	id       uint64
	oldLen   int
	oldCRC   uint32
	contents []byte // replacement (a private copy); nil for a drop
}

// compactPending collects decisions until they are written.
type compactPending struct {
	drops, updates []compactRow
	bytes          int // summed replacement bytes
}

// Compact passes every record with id <= limit to fn in ascending id order
// and drops or replaces it as fn says; ids never change. The horizon is
// raised first (UPDATE ... GREATEST) when horizon is above it, and the
// marks of commits that end below it are deleted then, except the latest
// commit's (readers below the horizon rebuild and need none); the marks
// of the other commits stay, so a commit whose records fn drops stays
// verifiable by Poll. Records are
// read in pages in autocommit with no connection held while fn runs; the
// decisions of each page are written in one transaction (smaller if the
// replacements exceed MaxBatchBytes), retried on deadlocks. A row is
// changed only if its contents still have the length and CRC-32 fn saw, so
// a record that a concurrent REPLACE or compaction removed or rewrote
// meanwhile is left alone.
//
// The stats count the records passed to fn and what is left of them.
// Errors stop the pass, after writing the decisions already made: the
// context's, fn's error as is, ErrTooLarge (logstore's) when fn returns
// more than Limits().MaxRecordSize bytes (that record stays unchanged),
// ErrNoLog when the tables or the meta row are missing (nothing is
// changed then), server errors.
func (s *Store) Compact(ctx context.Context, limit, horizon uint64, fn logstore.CompactFunc) (logstore.CompactStats, error) {
	var stats logstore.CompactStats
	if err := s.checkUsable(ctx); err != nil {
		return stats, err
	}
	packet, err := s.serverPacket(ctx)
	if err != nil {
		return stats, fmt.Errorf("mysqlstore: compact: %w", err)
	}
	maxRecord := limitsFor(packet).MaxRecordSize
	if _, err := s.info(ctx, s.db); err != nil {
		return stats, err
	}
	if s.py != nil {
		// Python's table has no place for a horizon: only superseded
		// effects may go, and rewritten records keep Python's framing.
		if horizon > 0 {
			return stats, fmt.Errorf("mysqlstore: compact: a Python whycache table keeps no compaction horizon, so delete markers and filtered keys cannot be dropped (horizon %d asked): %w",
				horizon, logstore.ErrNotRepresentable)
		}
		fn = pyCompactFunc(fn, maxRecord)
	}
	if horizon > 0 {
		if err := s.raiseHorizon(ctx, horizon); err != nil {
			return stats, err
		}
	}
	var pend compactPending
	stop := func(err error) (logstore.CompactStats, error) {
		if ferr := s.compactFlush(ctx, &pend); ferr != nil {
			return stats, errors.Join(err, ferr)
		}
		return stats, err
	}
	pager := s.newPager(1, limit)
	for {
		n, err := pager.next(ctx, s, s.db)
		if err != nil {
			return stats, err
		}
		if n == 0 {
			return stats, nil
		}
		for i := range n {
			if err := ctx.Err(); err != nil {
				return stop(fmt.Errorf("mysqlstore: compact: %w", err))
			}
			id, c := pager.ids[i], pager.contents(i)
			row := compactRow{id: id, oldLen: len(c), oldCRC: crc32.ChecksumIEEE(c)}
			newContents, keep, err := fn(id, c)
			if err != nil {
				return stop(err)
			}
			if keep && len(newContents) > maxRecord {
				return stop(fmt.Errorf("mysqlstore: compacted record %d of %d bytes is above %d: %w",
					id, len(newContents), maxRecord, logstore.ErrTooLarge))
			}
			stats.RecordsBefore++
			stats.BytesBefore += uint64(row.oldLen)
			switch {
			case !keep:
				pend.drops = append(pend.drops, row)
			case bytes.Equal(newContents, c) && crc32.ChecksumIEEE(c) == row.oldCRC:
				// Unchanged (and not modified in place either).
			default:
				row.contents = bytes.Clone(newContents)
				if row.contents == nil {
					row.contents = []byte{}
				}
				pend.updates = append(pend.updates, row)
				pend.bytes += len(row.contents)
			}
			if keep {
				stats.RecordsAfter++
				stats.BytesAfter += uint64(len(newContents))
			}
			if pend.bytes >= s.opts.MaxBatchBytes {
				if err := s.compactFlush(ctx, &pend); err != nil {
					return stats, err
				}
			}
		}
		if err := s.compactFlush(ctx, &pend); err != nil {
			return stats, err
		}
	}
}

// raiseHorizon raises the horizon to at least horizon, then deletes the
// marks below it but the latest one, in chunks of PageRows (each its own
// statement, so commits, which insert marks far above, are not held up).
func (s *Store) raiseHorizon(ctx context.Context, horizon uint64) error {
	if err := s.exec(ctx, s.q.raiseHorizon, horizon); err != nil {
		return fmt.Errorf("mysqlstore: raise horizon: %w", s.txError(ctx, s.db, err))
	}
	var maxMark uint64
	if err := s.db.QueryRowContext(ctx, s.q.maxMark).Scan(&maxMark); err != nil {
		return fmt.Errorf("mysqlstore: raise horizon: %w", s.txError(ctx, s.db, err))
	}
	if err := s.deleteChunks(ctx, s.q.pruneMarks, min(horizon, maxMark)); err != nil {
		return fmt.Errorf("mysqlstore: raise horizon: prune marks: %w", err)
	}
	return nil
}

// deleteChunks runs query (a DELETE ... LIMIT ? taking args, then the
// chunk size) in autocommit until it deletes fewer rows than a chunk.
func (s *Store) deleteChunks(ctx context.Context, query string, args ...any) error {
	chunk := int64(s.opts.PageRows)
	args = append(args, chunk)
	for {
		var n int64
		err := s.retry(ctx, func(ctx context.Context) error {
			res, err := s.db.ExecContext(ctx, query, args...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return err
		}
		if n < chunk {
			return nil
		}
	}
}

// compactFlush writes the pending decisions in one transaction and
// empties pend.
func (s *Store) compactFlush(ctx context.Context, pend *compactPending) error {
	if len(pend.drops) == 0 && len(pend.updates) == 0 {
		return nil
	}
	if err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.compactWrite(ctx, tx, pend)
	}); err != nil {
		return fmt.Errorf("mysqlstore: compact: %w", err)
	}
	*pend = compactPending{drops: pend.drops[:0], updates: pend.updates[:0]}
	return nil
}

// compactWrite runs the statements of pend in tx: guarded multi-row
// DELETEs, then one guarded UPDATE per replaced record.
func (s *Store) compactWrite(ctx context.Context, tx *sql.Tx, pend *compactPending) error {
	for start := 0; start < len(pend.drops); start += s.opts.MaxStatementRows {
		chunk := pend.drops[start:min(start+s.opts.MaxStatementRows, len(pend.drops))]
		args := make([]any, 0, 4*len(chunk))
		for _, r := range chunk {
			args = append(args, r.id)
		}
		for _, r := range chunk {
			args = append(args, r.id, r.oldLen, r.oldCRC)
		}
		if _, err := tx.ExecContext(ctx, s.q.deleteSQL(len(chunk)), args...); err != nil {
			return err
		}
	}
	if len(pend.updates) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, s.q.compactUpdate)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, r := range pend.updates {
		if _, err := stmt.ExecContext(ctx, r.contents, r.id, r.oldLen, r.oldCRC); err != nil {
			return err
		}
	}
	return nil
}

// Reset deletes every record and every mark and gives the log a new
// identity, with horizon 0 and latest nonce 0; next_id is kept, so ids are
// never reused. It first deletes the rows and marks in chunks of PageRows
// (each its own transaction, under the old identity), then, holding the
// counter lock so no writer commits in between, deletes what was committed
// meanwhile and writes the new identity in one transaction: a reader that
// sees the new identity never sees a record or mark of the old one.
// Errors: ErrNoLog when the tables or the meta row are missing (nothing is
// deleted then), ErrClosed, the context's, the server's.
func (s *Store) Reset(ctx context.Context) error {
	if err := s.checkUsable(ctx); err != nil {
		return err
	}
	if _, err := s.info(ctx, s.db); err != nil {
		return err
	}
	if s.py != nil {
		// The identity is derived, so it stays; ids keep increasing
		// (AUTO_INCREMENT), and readers past the empty log see it as
		// gone backwards.
		if err := s.deleteChunks(ctx, s.q.resetChunk); err != nil {
			return fmt.Errorf("mysqlstore: reset: delete records: %w", err)
		}
		return nil
	}
	id, err := newLogID()
	if err != nil {
		return fmt.Errorf("mysqlstore: reset: %w", err)
	}
	if err := s.deleteChunks(ctx, s.q.resetChunk); err != nil {
		return fmt.Errorf("mysqlstore: reset: delete records: %w", err)
	}
	if err := s.deleteChunks(ctx, s.q.resetMarksChunk); err != nil {
		return fmt.Errorf("mysqlstore: reset: delete marks: %w", err)
	}
	if err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.resetTx(ctx, tx, id)
	}); err != nil {
		if errors.Is(err, logstore.ErrNoLog) {
			return err
		}
		return fmt.Errorf("mysqlstore: reset: %w", err)
	}
	return nil
}

// resetTx locks the counter row, deletes every record and mark and sets
// the new identity.
func (s *Store) resetTx(ctx context.Context, tx *sql.Tx, id logstore.LogID) error {
	var next uint64
	if err := tx.QueryRowContext(ctx, s.q.lockCounter).Scan(&next); err != nil {
		if isMissing(err) {
			return s.noLog(ctx, tx, "reset", err)
		}
		return err
	}
	for _, q := range []string{s.q.deleteAll, s.q.deleteAllMarks} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, s.q.newIdentity, id[:])
	return err
}
