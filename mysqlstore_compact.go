package whycache

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/whycache/whycache/logstore"
)

// myCompactRow is one decision of a CompactFunc, with the length and
// CRC-32 of the contents it was made on.
type myCompactRow struct {
	id       uint64
	oldLen   int
	oldCRC   uint32
	contents []byte // replacement (a private copy); nil for a drop
}

// myCompactPending collects decisions until they are written.
type myCompactPending struct {
	drops, updates []myCompactRow
	bytes          int // summed replacement bytes
}

// Compact passes every record with id <= limit to fn in ascending id order
// and drops or replaces it as fn says; ids never change. The horizon is
// raised first (UPDATE ... GREATEST) when horizon is above it. Records are
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
// server errors.
func (s *MySQLStore) Compact(ctx context.Context, limit, horizon uint64, fn logstore.CompactFunc) (logstore.CompactStats, error) {
	var stats logstore.CompactStats
	if err := s.myCheck(ctx); err != nil {
		return stats, err
	}
	packet, err := s.myPacket(ctx)
	if err != nil {
		return stats, err
	}
	maxRecord := myLimitsFor(packet).MaxRecordSize
	if err := s.myEnsureMeta(ctx); err != nil {
		return stats, err
	}
	if horizon > 0 {
		err := s.myRetry(ctx, func(ctx context.Context) error {
			_, err := s.db.ExecContext(ctx, s.q.raiseHorizon, horizon)
			return err
		})
		if err != nil {
			return stats, fmt.Errorf("whycache: mysqlstore: raise horizon: %w", err)
		}
	}
	var pend myCompactPending
	stop := func(err error) (logstore.CompactStats, error) {
		if ferr := s.myCompactFlush(ctx, &pend); ferr != nil {
			return stats, errors.Join(err, ferr)
		}
		return stats, err
	}
	pager := s.myNewPager(1, limit)
	for {
		n, err := pager.next(ctx, s)
		if err != nil {
			return stats, err
		}
		if n == 0 {
			return stats, nil
		}
		for i := range n {
			if err := ctx.Err(); err != nil {
				return stop(fmt.Errorf("whycache: mysqlstore: compact: %w", err))
			}
			id, c := pager.ids[i], pager.contents(i)
			row := myCompactRow{id: id, oldLen: len(c), oldCRC: crc32.ChecksumIEEE(c)}
			newContents, keep, err := fn(id, c)
			if err != nil {
				return stop(err)
			}
			if keep && len(newContents) > maxRecord {
				return stop(fmt.Errorf("whycache: mysqlstore: compacted record %d of %d bytes is above %d: %w",
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
				if err := s.myCompactFlush(ctx, &pend); err != nil {
					return stats, err
				}
			}
		}
		if err := s.myCompactFlush(ctx, &pend); err != nil {
			return stats, err
		}
	}
}

// myCompactFlush writes the pending decisions in one transaction and
// empties pend.
func (s *MySQLStore) myCompactFlush(ctx context.Context, pend *myCompactPending) error {
	if len(pend.drops) == 0 && len(pend.updates) == 0 {
		return nil
	}
	if err := s.myInTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.myCompactWrite(ctx, tx, pend)
	}); err != nil {
		return fmt.Errorf("whycache: mysqlstore: compact: %w", err)
	}
	*pend = myCompactPending{drops: pend.drops[:0], updates: pend.updates[:0]}
	return nil
}

// myCompactWrite runs the statements of pend in tx: guarded multi-row
// DELETEs, then one guarded UPDATE per replaced record.
func (s *MySQLStore) myCompactWrite(ctx context.Context, tx *sql.Tx, pend *myCompactPending) error {
	for start := 0; start < len(pend.drops); start += s.opts.MaxStatementRows {
		chunk := pend.drops[start:min(start+s.opts.MaxStatementRows, len(pend.drops))]
		args := make([]any, 0, 4*len(chunk))
		for _, r := range chunk {
			args = append(args, r.id)
		}
		for _, r := range chunk {
			args = append(args, r.id, r.oldLen, r.oldCRC)
		}
		if _, err := tx.ExecContext(ctx, s.q.myDeleteSQL(len(chunk)), args...); err != nil {
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

// Reset deletes every record and gives the log a new identity, with
// horizon 0; next_id is kept, so ids are never reused. It first deletes
// the rows in chunks of PageRows (each its own transaction, under the old
// identity), then, holding the counter lock so no writer commits in
// between, deletes what was committed meanwhile and writes the new
// identity in one transaction: a reader that sees the new identity never
// sees a record of the old one.
func (s *MySQLStore) Reset(ctx context.Context) error {
	if err := s.myCheck(ctx); err != nil {
		return err
	}
	if err := s.myEnsureMeta(ctx); err != nil {
		return err
	}
	id, err := myNewLogID()
	if err != nil {
		return err
	}
	for chunk := int64(s.opts.PageRows); ; {
		var n int64
		err := s.myRetry(ctx, func(ctx context.Context) error {
			res, err := s.db.ExecContext(ctx, s.q.resetChunk, chunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return fmt.Errorf("whycache: mysqlstore: reset: delete records: %w", err)
		}
		if n < chunk {
			break
		}
	}
	if err := s.myInTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.myResetTx(ctx, tx, id)
	}); err != nil {
		return fmt.Errorf("whycache: mysqlstore: reset: %w", err)
	}
	return nil
}

// myResetTx locks the counter row, deletes every record and sets the new
// identity.
func (s *MySQLStore) myResetTx(ctx context.Context, tx *sql.Tx, id logstore.LogID) error {
	var next uint64
	if err := tx.QueryRowContext(ctx, s.q.lockCounter).Scan(&next); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return errMyNoMeta
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q.deleteAll); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, s.q.newIdentity, id[:])
	return err
}
