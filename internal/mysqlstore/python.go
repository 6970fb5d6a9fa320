package mysqlstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whycache/whycache/logstore"
)

// defaultHoleTimeout is Options.HoleTimeout's default.
const defaultHoleTimeout = 10 * time.Second

// pythonCreate is the table Python whycache's MySQL instance asks for
// (MySQLWhycacheInstance.py), with IF NOT EXISTS.
const pythonCreate = "CREATE TABLE IF NOT EXISTS `%s` (\n" +
	"  id BIGINT NOT NULL AUTO_INCREMENT,\n" +
	"  single_key VARBINARY(1024),\n" +
	"  contents MEDIUMBLOB NOT NULL,\n" +
	"  PRIMARY KEY (id),\n" +
	"  UNIQUE KEY (single_key)\n" +
	") ENGINE=InnoDB AUTO_INCREMENT=1"

// PythonSchema returns the statement that creates table as Python
// whycache's documentation asks (an AUTO_INCREMENT id, single_key,
// contents), which CreateTable runs in Python mode, or an error if table
// is not a valid name.
func PythonSchema(table string) (string, error) {
	if err := validTable(table); err != nil {
		return "", err
	}
	return fmt.Sprintf(pythonCreate, table), nil
}

// goModeHint ends every refusal of a Go-format table in Python mode.
const goModeHint = "this is a whycache for Go log: open it without --format python (Format: FormatGo)"

// pyMode is the state of a Store in Python mode (Options.Format is
// FormatPython); a Store in Go mode has none.
type pyMode struct {
	holes  *holeClock  // when a hole may be passed; per process, never persisted
	passed passedHoles // the holes passed, checked for late rows; per process

	ready atomic.Bool // the table was found in Python's layout once

	idMu  sync.Mutex     // guards logID
	logID logstore.LogID // derived identity; zero until first read

	autoincMode atomic.Int64 // @@innodb_autoinc_lock_mode + 1; 0 until first read

	replaceHead string // REPLACE INTO t (single_key, contents) VALUES
	poll        string // MAX(id) and the rows after a position, one statement
	seed        string // the ids in a range (pySeedPassed)
	create      string // pythonCreate for the table
}

// newPyMode returns the Python mode of a store on table.
func newPyMode(table string, holeTimeout time.Duration) *pyMode {
	t := "`" + table + "`"
	return &pyMode{
		holes:       newHoleClock(holeTimeout),
		replaceHead: "REPLACE INTO " + t + " (single_key, contents) VALUES ",
		// One statement, so one InnoDB read view: the highest id, then
		// the rows after the position (arguments: position, limit).
		poll: "SELECT 0, COALESCE(MAX(id), 0), NULL FROM " + t +
			" UNION ALL (SELECT 1, id, contents FROM " + t + " WHERE id > ? ORDER BY id LIMIT ?)",
		seed:   "SELECT id FROM " + t + " WHERE id BETWEEN ? AND ? ORDER BY id",
		create: fmt.Sprintf(pythonCreate, table),
	}
}

// Format returns the layout the store works on (Options.Format).
func (s *Store) Format() Format {
	if s.py != nil {
		return FormatPython
	}
	return FormatGo
}

// pyReady checks, once per store, that the table is in Python whycache's
// layout: it exists, its id is AUTO_INCREMENT and no meta table (a Go
// log's) lies beside it. It only reads. Errors wrap logstore.ErrNoLog.
func (s *Store) pyReady(ctx context.Context, op string) error {
	if s.py.ready.Load() {
		return nil
	}
	l, err := s.inspect(ctx, s.rdb)
	if err != nil {
		return fmt.Errorf("mysqlstore: %s: %w", op, err)
	}
	if why := s.pyForeign(l); why != "" {
		return fmt.Errorf("mysqlstore: %s: %s: %w", op, why, logstore.ErrNoLog)
	}
	s.py.ready.Store(true)
	return nil
}

// pyForeign returns why the tables are not a Python whycache log this
// store may use, or "" when they are.
func (s *Store) pyForeign(l tableLayout) string {
	cols, ok := l.columns(s.table)
	if !ok {
		return fmt.Sprintf("table %s does not exist; run whycache --format python init-schema (CreateTable) on the primary", s.table)
	}
	if _, ok := l.columns(s.table + "_meta"); ok {
		return fmt.Sprintf("table %s has a meta table %s_meta: %s", s.table, s.table, goModeHint)
	}
	for _, c := range []string{"id", "single_key", "contents"} {
		if _, ok := cols[c]; !ok {
			return fmt.Sprintf("table %s exists but is not a whycache log (it has no column %s)", s.table, c)
		}
	}
	if _, ok := cols["nonce"]; ok || !bytes.Contains([]byte(cols["id"]), []byte("auto_increment")) {
		return fmt.Sprintf("table %s is not in Python whycache's layout (its id is not AUTO_INCREMENT): %s", s.table, goModeHint)
	}
	return ""
}

// pyIdentity returns the log identity of the Python table: Python's
// table has no place for one, so it is derived from the server's host
// name and port, the database and the table (SHA-256, first 16 bytes). It
// stays the same across a Reset, and changes when the log moves to
// another server (a state then rebuilds, or is told to).
func (s *Store) pyIdentity(ctx context.Context) (logstore.LogID, error) {
	s.py.idMu.Lock()
	defer s.py.idMu.Unlock()
	if s.py.logID != (logstore.LogID{}) {
		return s.py.logID, nil
	}
	var host, db string
	var port int64
	if err := s.db.QueryRowContext(ctx, "SELECT @@hostname, @@port, COALESCE(DATABASE(), '')").Scan(&host, &port, &db); err != nil {
		return logstore.LogID{}, fmt.Errorf("mysqlstore: log identity: %w", err)
	}
	sum := sha256.Sum256([]byte("whycache python log\x00" + host + "\x00" + strconv.FormatInt(port, 10) + "\x00" + db + "\x00" + s.table))
	copy(s.py.logID[:], sum[:])
	if s.py.logID == (logstore.LogID{}) {
		s.py.logID[0] = 1 // the zero LogID is never a live log's
	}
	return s.py.logID, nil
}

// pyCreateTable creates the table exactly as Python whycache asks for it,
// if it is missing, then checks that what exists is in Python's layout.
func (s *Store) pyCreateTable(ctx context.Context) error {
	l, err := s.inspect(ctx, s.db)
	if err != nil {
		return fmt.Errorf("mysqlstore: create table %s: %w", s.table, err)
	}
	if _, ok := l.columns(s.table); !ok {
		if err := s.exec(ctx, s.py.create); err != nil {
			return fmt.Errorf("mysqlstore: create table %s: %w", s.table, err)
		}
	}
	s.py.ready.Store(false)
	return s.pyReady(ctx, "create table")
}

// errGoRecord is the error of a record in the Go framing found in a
// Python table.
func (s *Store) errGoRecord(op string, id uint64) error {
	return fmt.Errorf("mysqlstore: %s: record %d of %s is in whycache for Go's framing, which Python whycache cannot read (written without --format python?): %w",
		op, id, s.table, logstore.ErrCorrupt)
}

// isGoFramed reports whether contents claim the Go framing.
func isGoFramed(contents []byte) bool { return bytes.HasPrefix(contents, []byte(goRecordMagic)) }

// Traits returns the zero Traits in Go mode. In Python mode ids commit
// out of order (holes are waited for up to HoleTimeout) and there is no
// horizon.
func (s *Store) Traits() logstore.Traits {
	if s.py == nil {
		return logstore.Traits{}
	}
	return logstore.Traits{OutOfOrderIDs: true, HoleWait: s.opts.HoleTimeout, NoHorizon: true}
}

var _ logstore.TraitStore = (*Store)(nil)
