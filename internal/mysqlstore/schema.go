package mysqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/logstore"
)

// Schema is the text of schema.sql: the CREATE TABLE IF NOT EXISTS
// statements of the log table, its meta table and its marks table, named
// `whycache`, `whycache_meta` and `whycache_marks`, one column or key per
// line. The whycache package embeds schema.sql (at the module root, where
// operators read it) and gives it to every store it makes.
type Schema string

// tableRE is what a table name must match. 57 characters leave room for
// the "_marks" suffix within MySQL's 64-character identifier limit.
var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,56}$`)

// Server error numbers CreateTable accepts from a concurrent CreateTable.
const (
	erDupFieldName = 1060 // ALTER TABLE ADD COLUMN of a column another process just added
	erDupEntry     = 1062 // INSERT of the meta row another process just inserted
)

// validTable returns an error unless table is an acceptable table name.
func validTable(table string) error {
	if !tableRE.MatchString(table) {
		return fmt.Errorf("mysqlstore: invalid table name %q (want ^[A-Za-z_][A-Za-z0-9_]{0,56}$)", table)
	}
	return nil
}

// For returns the schema (the statements CreateTable runs) with the
// tables named table, table_meta and table_marks, or an error if table is
// not a valid name. For("whycache") is the schema as is.
func (sc Schema) For(table string) (string, error) {
	if err := validTable(table); err != nil {
		return "", err
	}
	return strings.NewReplacer(
		"`whycache`", "`"+table+"`",
		"`whycache_meta`", "`"+table+"_meta`",
		"`whycache_marks`", "`"+table+"_marks`",
	).Replace(string(sc)), nil
}

// schemaStatements splits a schema text into statements: comment lines
// are dropped and a statement ends with a semicolon at the end of a line.
func schemaStatements(schema string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(schema, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}

// tableDef is one CREATE TABLE statement of the schema: the table it
// creates and its column definitions, as written there.
type tableDef struct {
	name    string
	create  string
	columns []columnDef
}

// columnDef is one column of a tableDef.
type columnDef struct {
	name, def string // def is the whole definition ("nonce BIGINT ... DEFAULT 0")
}

// schemaTables parses the CREATE TABLE statements of a schema text (as
// schema.sql writes them: one column or key per line). Lines naming keys
// and checks are not columns.
func schemaTables(schema string) ([]tableDef, error) {
	const prefix = "CREATE TABLE IF NOT EXISTS `"
	var out []tableDef
	for _, stmt := range schemaStatements(schema) {
		rest, ok := strings.CutPrefix(stmt, prefix)
		if !ok {
			return nil, fmt.Errorf("mysqlstore: schema statement is not a CREATE TABLE IF NOT EXISTS: %.60q", stmt)
		}
		name, _, ok := strings.Cut(rest, "`")
		if !ok {
			return nil, fmt.Errorf("mysqlstore: schema statement without a table name: %.60q", stmt)
		}
		def := tableDef{name: name, create: stmt}
		for _, line := range strings.Split(stmt, "\n")[1:] {
			line = strings.TrimSuffix(strings.TrimSpace(line), ",")
			word, _, _ := strings.Cut(line, " ")
			switch strings.ToUpper(word) {
			case "", "PRIMARY", "UNIQUE", "KEY", "INDEX", "CHECK", "CONSTRAINT":
				continue
			}
			if strings.HasPrefix(word, ")") {
				continue
			}
			def.columns = append(def.columns, columnDef{name: word, def: line})
		}
		if len(def.columns) == 0 {
			return nil, fmt.Errorf("mysqlstore: schema table %s has no columns", name)
		}
		out = append(out, def)
	}
	return out, nil
}

// CreateTable creates the log: the log, meta and marks tables of
// schema.sql if they do not exist, every column of schema.sql that an
// existing table lacks (tables made by an earlier version are upgraded in
// place), and the meta row if it does not exist, with a random identity and
// next_id above every id already in the log and marks tables. Existing
// rows are left as they are. It is the only method that creates anything;
// run it on the primary ("whycache init-schema"). It is idempotent and safe
// to call from many processes at once.
//
// It refuses, before creating anything, a log table it does not recognize:
// one in Python whycache's layout (an AUTO_INCREMENT id, or no meta table
// and records in the Python framing), or one without the log's columns.
// That error wraps logstore.ErrNoLog. Other errors are the server's.
func (s *Store) CreateTable(ctx context.Context) error {
	if err := s.checkUsable(ctx); err != nil {
		return err
	}
	if s.py != nil {
		return s.pyCreateTable(ctx)
	}
	schema, err := s.schema.For(s.table)
	if err != nil {
		return err
	}
	defs, err := schemaTables(schema)
	if err != nil {
		return err
	}
	layout, err := s.inspect(ctx, s.db)
	if err != nil {
		return fmt.Errorf("mysqlstore: create table %s: %w", s.table, err)
	}
	if why, err := s.foreign(ctx, s.db, layout); err != nil {
		return fmt.Errorf("mysqlstore: create table %s: %w", s.table, err)
	} else if why != "" {
		return fmt.Errorf("mysqlstore: create table: %s: %w", why, logstore.ErrNoLog)
	}
	for _, def := range defs {
		if err := s.exec(ctx, def.create); err != nil {
			return fmt.Errorf("mysqlstore: create table %s: %w", def.name, err)
		}
	}
	if err := s.upgrade(ctx, defs); err != nil {
		return err
	}
	if err := s.createMeta(ctx); err != nil {
		return fmt.Errorf("mysqlstore: create meta row of %s: %w", s.table, err)
	}
	return nil
}

// exec runs one statement in autocommit, retried on deadlocks.
func (s *Store) exec(ctx context.Context, query string, args ...any) error {
	return s.retry(ctx, func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx, query, args...)
		return err
	})
}

// upgrade adds to the existing tables every column of defs they lack,
// as schema.sql defines it. A column another process adds meanwhile makes
// the ALTER fail with a duplicate column; the tables are then looked at
// again.
func (s *Store) upgrade(ctx context.Context, defs []tableDef) error {
	for attempt := 0; ; attempt++ {
		layout, err := s.inspect(ctx, s.db)
		if err != nil {
			return fmt.Errorf("mysqlstore: upgrade %s: %w", s.table, err)
		}
		dup := false
		for _, def := range defs {
			have, ok := layout.columns(def.name)
			if !ok {
				return fmt.Errorf("mysqlstore: upgrade: table %s missing after CREATE TABLE", def.name)
			}
			var adds []string
			for _, c := range def.columns {
				if _, ok := have[strings.ToLower(c.name)]; !ok {
					adds = append(adds, "ADD COLUMN "+c.def)
				}
			}
			if len(adds) == 0 {
				continue
			}
			err := s.exec(ctx, "ALTER TABLE `"+def.name+"` "+strings.Join(adds, ", "))
			var me *mysql.MySQLError
			switch {
			case errors.As(err, &me) && me.Number == erDupFieldName && attempt < 3:
				dup = true
			case err != nil:
				return fmt.Errorf("mysqlstore: upgrade table %s: %w", def.name, err)
			}
		}
		if !dup {
			return nil
		}
	}
}

// createMeta inserts the meta row unless it exists: a random identity,
// horizon 0 and next_id above every id in the log and marks tables (the
// log may hold records whose meta row was lost; their ids are never given
// again). The highest ids are read before the INSERT without locking: no
// store commits while the row is missing, so they cannot grow meanwhile.
// A row another process inserted first wins.
func (s *Store) createMeta(ctx context.Context) error {
	var next uint64
	switch err := s.db.QueryRowContext(ctx, s.q.latest).Scan(&next); {
	case err == nil:
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	var maxID, maxMark uint64
	if err := s.db.QueryRowContext(ctx, s.q.maxID).Scan(&maxID); err != nil {
		return err
	}
	if err := s.db.QueryRowContext(ctx, s.q.maxMark).Scan(&maxMark); err != nil {
		return err
	}
	id, err := newLogID()
	if err != nil {
		return err
	}
	err = s.exec(ctx, s.q.createMeta, id[:], max(maxID, maxMark)+1)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == erDupEntry {
		return nil
	}
	return err
}

// newLogID returns a random, non-zero log identity.
func newLogID() (logstore.LogID, error) {
	var id logstore.LogID
	for id == (logstore.LogID{}) {
		if _, err := rand.Read(id[:]); err != nil {
			return id, fmt.Errorf("new log id: %w", err)
		}
	}
	return id, nil
}

// serverPacket returns the server's max_allowed_packet, asking the server
// the first time. Its errors carry no package prefix: callers add theirs.
func (s *Store) serverPacket(ctx context.Context) (int, error) {
	s.packetMu.Lock()
	defer s.packetMu.Unlock()
	if s.maxPacket > 0 {
		return s.maxPacket, nil
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&n); err != nil {
		return 0, fmt.Errorf("query max_allowed_packet: %w", err)
	}
	if n < 1024 {
		return 0, fmt.Errorf("max_allowed_packet %d is too small", n)
	}
	s.maxPacket = int(min(n, 1<<30))
	return s.maxPacket, nil
}
