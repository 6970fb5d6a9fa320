// Package pytest writes to a MySQL table exactly as Python whycache's
// MySQLWhycacheInstance does, so tests can reproduce a mixed fleet
// without Python: the table Python's documentation asks for, one
// autocommit REPLACE INTO t (single_key, contents) VALUES (%s, %s) per
// record with the id from the table's AUTO_INCREMENT, the Python framing
// (an empty value is a delete), and inserts held open in a transaction
// to commit out of order.
package pytest

import (
	"context"
	"database/sql"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// Writer writes records to one table as Python whycache does.
type Writer struct {
	DB    *sql.DB
	Table string
}

// Create runs create, the statement that makes the writer's table as
// Python's documentation says (mysqlstore.PythonSchema; the store's tests
// check what it makes against Python's text).
func (w Writer) Create(tb testing.TB, create string) {
	tb.Helper()
	if _, err := w.DB.Exec(create); err != nil {
		tb.Fatalf("create the Python table %s: %v", w.Table, err)
	}
}

// Record returns the Python framing of items; a Delete item is an empty
// value.
func Record(tb testing.TB, items ...logstore.Item) []byte {
	tb.Helper()
	b, err := logstore.AppendPythonRecord(nil, items)
	if err != nil {
		tb.Fatalf("python record: %v", err)
	}
	return b
}

// replace is Python's commit_update statement.
func (w Writer) replace() string {
	return "REPLACE INTO `" + w.Table + "` (single_key, contents) VALUES (?, ?)"
}

// singleKey is the single_key Python writes: the key of a one-item
// record, else NULL.
func singleKey(items []logstore.Item) any {
	if len(items) == 1 {
		return items[0].Key
	}
	return nil
}

// Commit writes one record of items in autocommit, as commit_update does,
// and returns its id (cursor.lastrowid).
func (w Writer) Commit(tb testing.TB, items ...logstore.Item) uint64 {
	tb.Helper()
	res, err := w.DB.Exec(w.replace(), singleKey(items), Record(tb, items...))
	if err != nil {
		tb.Fatalf("python commit: %v", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		tb.Fatalf("python commit: %v", err)
	}
	return uint64(id)
}

// Set writes key=value as Python's set does.
func (w Writer) Set(tb testing.TB, key, value string) uint64 {
	tb.Helper()
	return w.Commit(tb, logstore.Item{Key: []byte(key), Value: []byte(value)})
}

// Delete writes a delete of key as Python's delete does.
func (w Writer) Delete(tb testing.TB, key string) uint64 {
	tb.Helper()
	return w.Commit(tb, logstore.Item{Key: []byte(key), Delete: true})
}

// Held is an insert whose transaction is still open: its id is taken,
// its row invisible to others until Commit.
type Held struct {
	ID uint64
	tx *sql.Tx
}

// Hold runs the REPLACE of a record of items in a transaction and leaves
// it open, as a writer that got its AUTO_INCREMENT id and has not
// committed yet.
func (w Writer) Hold(tb testing.TB, items ...logstore.Item) *Held {
	tb.Helper()
	tx, err := w.DB.BeginTx(context.Background(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := tx.Exec(w.replace(), singleKey(items), Record(tb, items...))
	if err != nil {
		_ = tx.Rollback()
		tb.Fatalf("python held insert: %v", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		_ = tx.Rollback()
		tb.Fatal(err)
	}
	h := &Held{ID: uint64(id), tx: tx}
	tb.Cleanup(func() { _ = tx.Rollback() })
	return h
}

// Commit commits the held insert.
func (h *Held) Commit(tb testing.TB) {
	tb.Helper()
	if err := h.tx.Commit(); err != nil {
		tb.Fatalf("commit held insert %d: %v", h.ID, err)
	}
}

// Rollback rolls the held insert back: its id is a hole forever.
func (h *Held) Rollback(tb testing.TB) {
	tb.Helper()
	if err := h.tx.Rollback(); err != nil {
		tb.Fatalf("roll back held insert %d: %v", h.ID, err)
	}
}

// Replay reads the whole table as Python's update does (ids in order,
// each record applied, an empty value deleting) and returns the state.
func (w Writer) Replay(tb testing.TB) map[string]string {
	tb.Helper()
	rows, err := w.DB.Query("SELECT id, contents FROM `" + w.Table + "` ORDER BY id")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	state := map[string]string{}
	for rows.Next() {
		var id uint64
		var c []byte
		if err := rows.Scan(&id, &c); err != nil {
			tb.Fatal(err)
		}
		if err := logstore.DecodePythonRecord(c, func(it logstore.Item) error {
			if it.Delete {
				delete(state, string(it.Key))
			} else {
				state[string(it.Key)] = string(it.Value)
			}
			return nil
		}); err != nil {
			tb.Fatalf("record %d is not in the Python framing: %v", id, err)
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return state
}
