package whycache

import (
	"context"
	"crypto/rand"
	"database/sql"
	_ "embed" // schema.sql
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/whycache/whycache/logstore"
)

// mySchema is the text of schema.sql: the log table and its meta table,
// named `whycache` and `whycache_meta`.
//
//go:embed schema.sql
var mySchema string

// myTableRE is what a table name must match. 57 characters leave room for
// the "_meta" suffix within MySQL's 64-character identifier limit.
var myTableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,56}$`)

// myValidTable returns an error unless table is an acceptable table name.
func myValidTable(table string) error {
	if !myTableRE.MatchString(table) {
		return fmt.Errorf("whycache: mysqlstore: invalid table name %q (want ^[A-Za-z_][A-Za-z0-9_]{0,56}$)", table)
	}
	return nil
}

// MySQLSchemaFor returns the text of schema.sql (the statements
// CreateTable runs) with the tables named table and table_meta, or an
// error if table is not a valid name. MySQLSchemaFor("whycache") is
// schema.sql as is.
func MySQLSchemaFor(table string) (string, error) {
	if err := myValidTable(table); err != nil {
		return "", err
	}
	return strings.NewReplacer("`whycache`", "`"+table+"`", "`whycache_meta`", "`"+table+"_meta`").Replace(mySchema), nil
}

// mySchemaStatements splits a schema text into statements: comment lines
// are dropped and a statement ends with a semicolon at the end of a line.
func mySchemaStatements(schema string) []string {
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

// CreateTable creates the log table and its meta table if they do not
// exist (CREATE TABLE IF NOT EXISTS; existing tables are left as they
// are). The meta row is created on first use, not here. It is safe to call
// from many processes at once.
func (s *MySQLStore) CreateTable(ctx context.Context) error {
	if err := s.myCheck(ctx); err != nil {
		return err
	}
	schema, err := MySQLSchemaFor(s.table)
	if err != nil {
		return err
	}
	for _, stmt := range mySchemaStatements(schema) {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("whycache: mysqlstore: create table %s: %w", s.table, err)
		}
	}
	return nil
}

// myNewLogID returns a random, non-zero log identity.
func myNewLogID() (logstore.LogID, error) {
	var id logstore.LogID
	for id == (logstore.LogID{}) {
		if _, err := rand.Read(id[:]); err != nil {
			return id, fmt.Errorf("whycache: mysqlstore: new log id: %w", err)
		}
	}
	return id, nil
}

// myEnsureMeta creates the meta row if it does not exist yet: a random log
// id, horizon 0 and next_id above every id in the log table (which may
// hold records from before the meta table existed). It reads without
// locking (a locking INSERT ... SELECT would hold locks on the log table
// that writers need); no store can commit while the row is missing, so
// MAX(id) cannot grow before the INSERT. One call per store does the work
// at a time; once the row has been seen, it does nothing more.
func (s *MySQLStore) myEnsureMeta(ctx context.Context) error {
	if s.metaReady.Load() {
		return nil
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.metaReady.Load() {
		return nil
	}
	var next uint64
	switch err := s.db.QueryRowContext(ctx, s.q.latest).Scan(&next); {
	case err == nil:
		s.metaReady.Store(true)
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("whycache: mysqlstore: read meta row: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, s.q.maxID).Scan(&next); err != nil {
		return fmt.Errorf("whycache: mysqlstore: read highest id: %w", err)
	}
	id, err := myNewLogID()
	if err != nil {
		return err
	}
	err = s.myRetry(ctx, func(context.Context) error {
		_, err := s.db.ExecContext(ctx, s.q.initMeta, id[:], next+1)
		return err
	})
	if err != nil {
		return fmt.Errorf("whycache: mysqlstore: create meta row: %w", err)
	}
	s.metaReady.Store(true)
	return nil
}

// myPacket returns the server's max_allowed_packet, asking the server the
// first time.
func (s *MySQLStore) myPacket(ctx context.Context) (int, error) {
	s.packetMu.Lock()
	defer s.packetMu.Unlock()
	if s.maxPacket > 0 {
		return s.maxPacket, nil
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&n); err != nil {
		return 0, fmt.Errorf("whycache: mysqlstore: query max_allowed_packet: %w", err)
	}
	if n < 1024 {
		return 0, fmt.Errorf("whycache: mysqlstore: max_allowed_packet %d is too small", n)
	}
	s.maxPacket = int(min(n, 1<<30))
	return s.maxPacket, nil
}
