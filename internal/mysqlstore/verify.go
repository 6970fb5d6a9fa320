package mysqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/whycache/whycache/logstore"
)

var _ logstore.Checker = (*Store)(nil)

// checkedRow is what Check keeps of a log row while it looks up the
// row's commit mark.
type checkedRow struct {
	id, nonce uint64
}

// markCursor walks the marks table in ascending order, a page at a time,
// within Check's transaction, checking every mark it loads.
type markCursor struct {
	s      *Store
	tx     *sql.Tx
	latest uint64
	page   []checkedRow // marks loaded and not passed yet (id = last_id)
	from   uint64       // the next page starts here
	done   bool         // no marks after page
	count  int
	last   checkedRow // the highest mark loaded so far
}

// at returns the lowest mark with last_id >= id, and false when there is
// none.
func (c *markCursor) at(ctx context.Context, id uint64) (checkedRow, bool, error) {
	for {
		for len(c.page) > 0 && c.page[0].id < id {
			c.page = c.page[1:]
		}
		if len(c.page) > 0 {
			return c.page[0], true, nil
		}
		if c.done {
			return checkedRow{}, false, nil
		}
		if err := c.load(ctx); err != nil {
			return checkedRow{}, false, err
		}
	}
}

// load reads and checks the next page of marks.
func (c *markCursor) load(ctx context.Context) error {
	rows, err := c.tx.QueryContext(ctx, c.s.q.marksPage, c.from, c.s.opts.PageRows)
	if err != nil {
		return err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var m checkedRow
		var us uint64
		if err := rows.Scan(&m.id, &m.nonce, &us); err != nil {
			return err
		}
		n++
		c.count++
		switch {
		case m.id == 0 || m.id > c.latest:
			return c.s.corruptf("mark %d is above the latest id %d", m.id, c.latest)
		case m.nonce == 0:
			return c.s.corruptf("mark %d has nonce 0", m.id)
		case c.count > 1 && m.id <= c.last.id:
			return c.s.corruptf("mark %d follows mark %d", m.id, c.last.id)
		}
		c.page = append(c.page, m)
		c.last = m
		c.from = m.id + 1
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n < c.s.opts.PageRows || c.from == 0 {
		c.done = true
	}
	return nil
}

// Check verifies the whole log in one consistent snapshot (a read-only
// transaction on the read pool, Options.ReadDB or the primary; it never
// writes): the meta row (a non-zero 16-byte
// identity, next_id from 1 to 2^63), every row (an id from 1 to the
// latest id; contents that decode completely, in either framing; a
// single_key that is the record's only key; a nonce equal to that of its
// commit's mark, the lowest mark at or above it, for rows with a nonce at
// or above the horizon), every mark (an id from 1 to the latest, a
// non-zero nonce) and the latest commit (its nonce in the meta row is that
// of the highest mark). Rows with nonce 0 were written before nonces
// existed, or by a writer of an earlier version, and need no mark. Damage is an error wrapping
// logstore.ErrCorrupt that names the row or mark; ErrNoLog when the log
// does not exist; otherwise the server's errors.
func (s *Store) Check(ctx context.Context) error {
	if err := s.checkUsable(ctx); err != nil {
		return err
	}
	if s.py != nil {
		return s.pyCheck(ctx)
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("mysqlstore: check: %w", err)
	}
	defer tx.Rollback() // read only: nothing to keep
	if err := s.checkTx(ctx, tx); err != nil {
		if errors.Is(err, logstore.ErrCorrupt) || errors.Is(err, logstore.ErrNoLog) {
			return err
		}
		if isMissing(err) {
			return s.noLog(ctx, tx, "check", err)
		}
		return fmt.Errorf("mysqlstore: check: %w", err)
	}
	return nil
}

// corruptf returns an error of Check wrapping ErrCorrupt.
func (s *Store) corruptf(format string, args ...any) error {
	return fmt.Errorf("mysqlstore: check %s: %s: %w", s.table, fmt.Sprintf(format, args...), logstore.ErrCorrupt)
}

// checkTx is Check in its transaction.
func (s *Store) checkTx(ctx context.Context, tx *sql.Tx) error {
	var id []byte
	var next, horizon, latestNonce, latestUS uint64
	err := tx.QueryRowContext(ctx, s.q.meta).Scan(&id, &next, &horizon, &latestNonce, &latestUS)
	if errors.Is(err, sql.ErrNoRows) {
		return s.noLog(ctx, tx, "check", err)
	}
	if err != nil {
		return err
	}
	if _, err := s.decodeLogID(id); err != nil {
		return fmt.Errorf("mysqlstore: check: %w", err)
	}
	if next == 0 || next-1 > math.MaxInt64 {
		return s.corruptf("meta row has next_id %d", next)
	}
	latest := next - 1
	marks := &markCursor{s: s, tx: tx, latest: latest, from: 1}
	var page []checkedRow
	for from := uint64(1); ; {
		page = page[:0]
		if err := s.checkRows(ctx, tx, from, latest, &page); err != nil {
			return err
		}
		for _, r := range page {
			if r.nonce == 0 || r.id < horizon {
				continue
			}
			m, ok, err := marks.at(ctx, r.id)
			switch {
			case err != nil:
				return err
			case !ok:
				return s.corruptf("row %d has nonce %016x but no commit mark at or above it", r.id, r.nonce)
			case m.nonce != r.nonce:
				return s.corruptf("row %d has nonce %016x, its commit's mark %d has %016x", r.id, r.nonce, m.id, m.nonce)
			}
		}
		if len(page) < s.opts.PageRows {
			break
		}
		from = page[len(page)-1].id + 1
	}
	// The remaining marks, and the latest commit's.
	for !marks.done {
		if err := marks.load(ctx); err != nil {
			return err
		}
		marks.page = marks.page[:0]
	}
	// Rows above the highest mark have nonce 0 (checked above): a writer
	// of an earlier version committed them and left the meta row's latest
	// nonce as it was.
	if latestNonce != 0 && (marks.count == 0 || marks.last.nonce != latestNonce) {
		return s.corruptf("meta row names latest nonce %016x, but the highest mark is %d with nonce %016x",
			latestNonce, marks.last.id, marks.last.nonce)
	}
	return nil
}

// checkRows checks up to PageRows rows with id >= from and appends the
// id and nonce of each to page.
func (s *Store) checkRows(ctx context.Context, tx *sql.Tx, from, latest uint64, page *[]checkedRow) error {
	rows, err := tx.QueryContext(ctx, s.q.checkPage, from, s.opts.PageRows)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r checkedRow
		var key, contents sql.RawBytes
		if err := rows.Scan(&r.id, &key, &r.nonce, &contents); err != nil {
			return err
		}
		if r.id == 0 || r.id > latest {
			return s.corruptf("row %d is above the latest id %d", r.id, latest)
		}
		items := 0
		var first []byte
		err := logstore.DecodeRecord(contents, func(it logstore.Item) error {
			if items == 0 {
				first = it.Key
			}
			items++
			return nil
		})
		if err != nil {
			return fmt.Errorf("mysqlstore: check %s: row %d: %w", s.table, r.id, err)
		}
		if key != nil && (items != 1 || !bytes.Equal(first, key)) {
			return s.corruptf("row %d is indexed by single key %q but holds %d items, the first with key %q", r.id, key, items, first)
		}
		*page = append(*page, r)
	}
	return rows.Err()
}
