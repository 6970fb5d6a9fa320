package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/logstore"
)

// Server error numbers the store retries.
const (
	erLockWaitTimeout = 1205
	erLockDeadlock    = 1213
)

// mismatchError is returned by commitTx when the log's identity is
// not the one the batch expects.
type mismatchError struct {
	have, want logstore.LogID
}

func (e *mismatchError) Error() string {
	return fmt.Sprintf("log %x, expected %x", e.have, e.want)
}

// unknownError is the error of a transaction whose COMMIT failed in a
// way that leaves its outcome unknown; first is the id its first record
// has and nonce the nonce its records and mark carry if it did commit.
type unknownError struct {
	first, nonce uint64
	cause        error
}

func (e *unknownError) Error() string { return "commit outcome unknown: " + e.cause.Error() }
func (e *unknownError) Unwrap() error { return e.cause }

// retryable reports whether err is a deadlock or lock wait timeout: the
// server rolled the statement or transaction back and a new attempt may
// succeed.
func retryable(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	return me.Number == erLockDeadlock || me.Number == erLockWaitTimeout
}

// retry runs fn until it succeeds, fails with an error that is not
// retryable, or MaxAttempts is reached, sleeping a jittered exponential
// backoff between attempts. fn must leave nothing behind when it fails
// (a transaction it began is rolled back).
func (s *Store) retry(ctx context.Context, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !retryable(err) || attempt >= s.opts.MaxAttempts {
			return err
		}
		if h := s.hookRetry; h != nil {
			h(attempt, err)
		}
		d := s.opts.RetryBaseDelay << min(attempt-1, 20)
		d = min(d, s.opts.RetryMaxDelay)
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to retry after: %w)", ctx.Err(), err)
		}
	}
}

// inTx runs fn in a transaction and commits it, trying the whole
// transaction again (as retry does) when the server reports a deadlock
// or lock wait timeout. fn's error rolls the transaction back and is
// returned.
func (s *Store) inTx(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	return s.retry(ctx, func(ctx context.Context) error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(ctx, tx); err != nil {
			_ = tx.Rollback() // fn's error is the one to report
			return err
		}
		return tx.Commit()
	})
}

// runBatch commits the requests of batch in one transaction (retried on
// deadlocks and lock wait timeouts) and sends every request its result.
// The requests expect at most one log identity (takeLocked): if the log
// has another, those requests fail with ErrLogMismatch and the others are
// committed without them. If the server refuses the shared transaction,
// each request is tried alone, so one bad request does not fail the
// others.
func (s *Store) runBatch(ctx context.Context, batch []*commitReq) {
	expect := batchExpect(batch)
	var first, nonce uint64
	var prev logstore.Position
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		first, nonce, prev, err = s.commitTx(ctx, batch, expect)
		return err
	})
	var mismatch *mismatchError
	if errors.As(err, &mismatch) {
		var rest []*commitReq
		for _, r := range batch {
			if r.expect == (logstore.LogID{}) {
				rest = append(rest, r)
				continue
			}
			r.done <- commitResult{err: fmt.Errorf("mysqlstore: commit (nothing committed): %w: %w", mismatch, logstore.ErrLogMismatch)}
		}
		if len(rest) > 0 {
			s.runBatch(ctx, rest)
		}
		return
	}
	var me *mysql.MySQLError
	var unknown *unknownError
	if err != nil && len(batch) > 1 && errors.As(err, &me) && !errors.As(err, &unknown) && !retryable(err) {
		for _, r := range batch {
			s.runBatch(ctx, []*commitReq{r})
		}
		return
	}
	off := uint64(0) // ids taken by the requests before r
	for _, r := range batch {
		n := uint64(len(r.records))
		var res commitResult
		switch {
		case err == nil:
			res.c = logstore.Committed{First: first + off, Last: first + off + n - 1, Nonce: nonce, Prev: prev}
			prev = res.c.Position()
		case errors.As(err, &unknown):
			res.err = fmt.Errorf("%w: the records would have ids %d..%d and nonce %016x: %w",
				ErrCommitUnknown, unknown.first+off, unknown.first+off+n-1, unknown.nonce, unknown.cause)
		case errors.Is(err, logstore.ErrNoLog):
			res.err = err
		default:
			res.err = fmt.Errorf("mysqlstore: commit (nothing committed): %w", err)
		}
		off += n
		r.done <- res
	}
}

// batchExpect returns the log identity the requests of batch expect, or
// the zero LogID if none expects one.
func batchExpect(batch []*commitReq) logstore.LogID {
	for _, r := range batch {
		if r.expect != (logstore.LogID{}) {
			return r.expect
		}
	}
	return logstore.LogID{}
}

// commitTx runs one commit transaction for batch under a new nonce and
// returns the id of its first record and the nonce. Its statements:
//
//   - one UPDATE of the counter row (prepared once per connection):
//     next_id = LAST_INSERT_ID(next_id + n) takes the ids, latest_nonce and
//     latest_us are set, and, when expect is set, the WHERE clause names
//     log_id too. The row lock it takes is held until COMMIT: a concurrent
//     writer waits there, so ids are committed in order and a rollback
//     leaves no gap. No row changed means a missing meta row or another
//     identity; only then a second query finds out which (ErrNoLog, or
//     *mismatchError).
//   - multi-row REPLACE statements of the records with their nonce, within
//     the statement caps;
//   - one INSERT ... SELECT of the mark, copied from the meta row;
//   - COMMIT.
//
// Errors before COMMIT leave nothing committed (the transaction is rolled
// back). A COMMIT that fails on a broken connection returns
// *unknownError. Missing tables or columns are ErrNoLog (prefixed, from
// noLog); other errors carry no package prefix: runBatch adds it.
func (s *Store) commitTx(ctx context.Context, batch []*commitReq, expect logstore.LogID) (first, nonce uint64, prev logstore.Position, err error) {
	total := 0
	for _, r := range batch {
		total += len(r.records)
	}
	packet, err := s.serverPacket(ctx)
	if err != nil {
		return 0, 0, prev, err
	}
	nonce, err = logstore.NewNonce()
	if err != nil {
		return 0, 0, prev, err
	}
	query, args := s.q.bumpCounter, []any{uint64(total), nonce}
	if expect != (logstore.LogID{}) {
		query, args = s.q.bumpCounterExpect, append(args, expect[:])
	}
	bump, err := s.prepared(ctx, s.db, query)
	if err != nil {
		return 0, 0, prev, s.txError(ctx, s.db, err)
	}
	if h := s.hookBatch; h != nil {
		h(len(batch), total)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, prev, err
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback() // the error is the one already being returned
		}
	}()
	// The log's latest position before this commit, read with the lock
	// the counter update takes anyway (Committed.Prev).
	var prevNext, prevNonce uint64
	switch err := tx.QueryRowContext(ctx, s.q.lockLatest).Scan(&prevNext, &prevNonce); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, 0, prev, s.noCounter(ctx, tx, expect)
	case err != nil:
		return 0, 0, prev, s.txError(ctx, tx, err)
	case prevNext > 1:
		prev = logstore.Position{ID: prevNext - 1, Nonce: prevNonce}
	}
	res, err := tx.StmtContext(ctx, bump).ExecContext(ctx, args...)
	if err != nil {
		return 0, 0, prev, s.txError(ctx, tx, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, 0, prev, err
	} else if n == 0 {
		return 0, 0, prev, s.noCounter(ctx, tx, expect)
	}
	next, err := res.LastInsertId()
	if err != nil {
		return 0, 0, prev, err
	}
	if next <= int64(total) {
		return 0, 0, prev, fmt.Errorf("id counter of %s at %d after taking %d ids: %w", s.table, next, total, logstore.ErrCorrupt)
	}
	first = uint64(next) - uint64(total)
	if err := s.insertRows(ctx, tx, batch, first, nonce, total, packet); err != nil {
		return 0, 0, prev, s.txError(ctx, tx, err)
	}
	if _, err := tx.ExecContext(ctx, s.q.insertMark); err != nil {
		return 0, 0, prev, s.txError(ctx, tx, err)
	}
	if h := s.hookBeforeCommit; h != nil {
		if err := h(ctx, first, first+uint64(total)-1, batch); err != nil {
			return 0, 0, prev, err
		}
	}
	done = true // Commit ends the transaction whatever it returns
	if err := tx.Commit(); err != nil {
		// database/sql returns the context's error or ErrTxDone without
		// sending COMMIT (the transaction is rolled back); the server
		// rolls back a deadlock victim. Anything else may have happened
		// after the server committed.
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
			errors.Is(err, sql.ErrTxDone) || retryable(err) {
			return 0, 0, prev, err
		}
		return 0, 0, prev, &unknownError{first: first, nonce: nonce, cause: err}
	}
	return first, nonce, prev, nil
}

// txError returns err, or the ErrNoLog error when err says a table or
// column is missing.
func (s *Store) txError(ctx context.Context, q querier, err error) error {
	if isMissing(err) {
		return s.noLog(ctx, q, "commit", err)
	}
	return err
}

// noCounter finds out, in tx, why the counter UPDATE changed no row: the
// meta row is missing (ErrNoLog) or has another identity
// (*mismatchError). Like commitTx's, its other errors carry no package
// prefix.
func (s *Store) noCounter(ctx context.Context, tx *sql.Tx, expect logstore.LogID) error {
	var have []byte
	err := tx.QueryRowContext(ctx, s.q.identity+" FOR UPDATE").Scan(&have, new(uint64))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return s.noLog(ctx, tx, "commit", err)
	case err != nil:
		return err
	case len(have) != len(logstore.LogID{}):
		return fmt.Errorf("log id of %d bytes in %s_meta: %w", len(have), s.table, logstore.ErrCorrupt)
	}
	m := &mismatchError{want: expect}
	copy(m.have[:], have)
	if m.have == expect {
		return fmt.Errorf("counter row of %s_meta changed no row though it exists with the expected identity", s.table)
	}
	return m
}

// insertRows REPLACEs the records of batch with ids from first on and
// the commit's nonce, split into statements of at most MaxStatementRows
// rows and the statement byte budget.
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, batch []*commitReq, first, nonce uint64, total, packet int) error {
	recs := make([]logstore.Record, 0, total)
	costs := make([]int, 0, total)
	for _, r := range batch {
		for _, rec := range r.records {
			if len(rec.SingleKey) > maxSingleKey {
				rec.SingleKey = nil
			}
			recs = append(recs, rec)
			costs = append(costs, rowCost(rec.SingleKey, rec.Contents))
		}
	}
	var args []any
	for _, ch := range splitByCost(costs, s.opts.MaxStatementRows, s.statementBudget(packet)) {
		args = args[:0]
		bytes := 0
		for i := ch[0]; i < ch[1]; i++ {
			var key any
			if len(recs[i].SingleKey) > 0 {
				key = recs[i].SingleKey
			}
			c := recs[i].Contents
			if c == nil {
				c = []byte{}
			}
			args = append(args, first+uint64(i), key, c, nonce)
			bytes += costs[i]
		}
		if h := s.hookStatement; h != nil {
			h(ch[1]-ch[0], bytes)
		}
		if _, err := tx.ExecContext(ctx, s.q.replaceSQL(ch[1]-ch[0]), args...); err != nil {
			return err
		}
	}
	return nil
}
