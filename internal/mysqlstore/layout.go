package mysqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/logstore"
)

// Server error numbers that mean the tables are missing or of an older
// layout.
const (
	erNoSuchTable = 1146
	erBadField    = 1054
)

// goRecordMagic starts every record in the Go format (logstore's
// AppendRecord); no valid Python record starts with it.
const goRecordMagic = "WCR"

// tableLayout is what information_schema says about the store's three tables:
// for each one that exists (by lower-case name), its columns (by
// lower-case name) and their EXTRA attribute (auto_increment, ...).
type tableLayout map[string]map[string]string

// columns returns the columns of table and whether it exists.
func (l tableLayout) columns(table string) (map[string]string, bool) {
	c, ok := l[strings.ToLower(table)]
	return c, ok
}

// inspect reads the columns of the log, meta and marks tables from
// information_schema, through q (a pool, or the transaction that met the
// missing table, so a pool of one connection cannot wait on itself). It
// writes nothing.
func (s *Store) inspect(ctx context.Context, q querier) (tableLayout, error) {
	rows, err := q.QueryContext(ctx,
		"SELECT TABLE_NAME, COLUMN_NAME, COALESCE(EXTRA, '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?, ?)",
		s.table, s.table+"_meta", s.table+"_marks")
	if err != nil {
		return nil, fmt.Errorf("read the tables' columns: %w", err)
	}
	defer rows.Close()
	l := tableLayout{}
	for rows.Next() {
		var table, column, extra string
		if err := rows.Scan(&table, &column, &extra); err != nil {
			return nil, fmt.Errorf("read the tables' columns: %w", err)
		}
		table = strings.ToLower(table)
		if l[table] == nil {
			l[table] = map[string]string{}
		}
		l[table][strings.ToLower(column)] = strings.ToLower(extra)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the tables' columns: %w", err)
	}
	return l, nil
}

// pythonHint is the end of every refusal of a Python whycache table.
const pythonHint = "open it in Python mode (whycache --format python, or MySQLStoreOptions.Format = FormatPython)"

// foreign returns why the log table is not one this store may use or
// create tables next to, or "" when it is (or does not exist yet): an
// AUTO_INCREMENT id (Python whycache's layout, whose writers take ids
// outside the counter), missing log columns, or, when there is no meta
// table, a first row that is not a record in the Go format. It writes
// nothing; q is the pool or transaction it reads through.
func (s *Store) foreign(ctx context.Context, q querier, l tableLayout) (string, error) {
	cols, ok := l.columns(s.table)
	if !ok {
		return "", nil
	}
	if strings.Contains(cols["id"], "auto_increment") {
		return fmt.Sprintf("table %s is in Python whycache's layout (an AUTO_INCREMENT id): %s", s.table, pythonHint), nil
	}
	for _, c := range []string{"id", "single_key", "contents"} {
		if _, ok := cols[c]; !ok {
			return fmt.Sprintf("table %s exists but is not a whycache log (it has no column %s)", s.table, c), nil
		}
	}
	if _, ok := l.columns(s.table + "_meta"); ok {
		return "", nil
	}
	var c []byte
	switch err := q.QueryRowContext(ctx, s.q.firstContents).Scan(&c); {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read the first row: %w", err)
	case bytes.HasPrefix(c, []byte(goRecordMagic)):
		return "", nil
	}
	if _, err := logstore.RecordItemCount(c); err == nil {
		return fmt.Sprintf("table %s is in Python whycache's layout (no meta table, records in the Python framing): %s", s.table, pythonHint), nil
	}
	return fmt.Sprintf("table %s has no meta table and its first row is not a whycache record", s.table), nil
}

// isMissing reports whether err says a table or column of the store is
// missing, or is sql.ErrNoRows (the meta row is missing).
func isMissing(err error) bool {
	if errors.Is(err, sql.ErrNoRows) {
		return true
	}
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == erNoSuchTable || me.Number == erBadField)
}

// noLog returns the error of an operation (op) that found the log
// missing: cause is sql.ErrNoRows for a missing meta row, or the server's
// error for a missing table or column. It looks at the tables (only
// reading) to say which: a table in Python whycache's layout, missing
// tables, tables of an older layout, or no meta row, through q: the pool
// the operation read (the read pool, for reads on a replica) or the
// transaction it runs in. The error wraps logstore.ErrNoLog.
func (s *Store) noLog(ctx context.Context, q querier, op string, cause error) error {
	why := s.noLogReason(ctx, q, cause)
	return fmt.Errorf("mysqlstore: %s: %s: %w", op, why, logstore.ErrNoLog)
}

// noLogReason is the reason part of noLog's message.
func (s *Store) noLogReason(ctx context.Context, q querier, cause error) string {
	const fix = "run whycache init-schema (CreateTable) on the primary"
	l, err := s.inspect(ctx, q)
	if err != nil {
		return fmt.Sprintf("the log %s is not initialized (%v); %s", s.table, cause, fix)
	}
	if why, err := s.foreign(ctx, q, l); err == nil && why != "" {
		return why
	}
	var missing []string
	for _, t := range []string{s.table, s.table + "_meta", s.table + "_marks"} {
		if _, ok := l.columns(t); !ok {
			missing = append(missing, t)
		}
	}
	switch {
	case len(missing) > 0:
		return fmt.Sprintf("table %s does not exist; %s", strings.Join(missing, ", "), fix)
	case !errors.Is(cause, sql.ErrNoRows):
		return fmt.Sprintf("the tables of %s are of an older layout (%v); %s to upgrade them", s.table, cause, fix)
	}
	return fmt.Sprintf("the meta row of %s_meta does not exist; %s", s.table, fix)
}
