package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// erUnknownSystemVariable is the server's error for @@name it lacks.
const erUnknownSystemVariable = 1193

// serverVars are the server settings CheckServer reads, each by a
// constant query. A variable the server does not know is left out.
var serverVars = []struct{ name, query string }{
	{"read_only", "SELECT @@global.read_only"},
	{"innodb_read_only", "SELECT @@global.innodb_read_only"},
	{"autocommit", "SELECT @@session.autocommit"},
	{"tx_isolation", "SELECT @@session.tx_isolation"},
	{"transaction_isolation", "SELECT @@session.transaction_isolation"},
	{"innodb_flush_log_at_trx_commit", "SELECT @@global.innodb_flush_log_at_trx_commit"},
	{"log_bin", "SELECT @@global.log_bin"},
	{"sync_binlog", "SELECT @@global.sync_binlog"},
	{"replica_parallel_workers", "SELECT @@global.replica_parallel_workers"},
	{"slave_parallel_workers", "SELECT @@global.slave_parallel_workers"},
	{"replica_preserve_commit_order", "SELECT @@global.replica_preserve_commit_order"},
	{"slave_preserve_commit_order", "SELECT @@global.slave_preserve_commit_order"},
	{"innodb_autoinc_lock_mode", "SELECT @@global.innodb_autoinc_lock_mode"},
}

// CheckServer reports settings of the server, the connection pool and the
// tables that break the store's guarantees, one sentence each; none means
// all is well as far as it can tell. It checks: a read-only server (a
// replica cannot take commits), autocommit off on the pool (reads would
// see stale snapshots), READ UNCOMMITTED (readers would see records that
// may roll back), non-durable commits (innodb_flush_log_at_trx_commit,
// sync_binlog: a crash could lose records readers already applied, and
// their ids would be reused), a MySQL replica applying transactions in
// parallel without preserving commit order, and tables that are missing
// or not InnoDB. It changes nothing (Check verifies the log's contents).
// The error reports a failed query.
func (s *Store) CheckServer(ctx context.Context) ([]string, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("mysqlstore: check server: %w", err)
	}
	defer conn.Close()
	vars := make(map[string]string, len(serverVars))
	for _, v := range serverVars {
		var val sql.NullString
		err := conn.QueryRowContext(ctx, v.query).Scan(&val)
		var me *mysql.MySQLError
		switch {
		case errors.As(err, &me) && me.Number == erUnknownSystemVariable:
			continue
		case err != nil:
			return nil, fmt.Errorf("mysqlstore: check server: %s: %w", v.name, err)
		}
		vars[v.name] = val.String
	}
	problems := checkVars(vars)
	if s.py != nil {
		problems = append(problems, pyCheckVars(vars)...)
	}
	engines, err := s.engines(ctx, conn)
	if err != nil {
		return nil, err
	}
	tables := []string{s.table, s.table + "_meta", s.table + "_marks"}
	if s.py != nil {
		tables = tables[:1]
	}
	return append(problems, checkEngines(tables, engines)...), nil
}

// engines returns the storage engine of the log, meta and marks tables
// by lower-case name.
func (s *Store) engines(ctx context.Context, conn *sql.Conn) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx,
		"SELECT TABLE_NAME, COALESCE(ENGINE, '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?, ?)",
		s.table, s.table+"_meta", s.table+"_marks")
	if err != nil {
		return nil, fmt.Errorf("mysqlstore: check server: tables: %w", err)
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return nil, fmt.Errorf("mysqlstore: check server: tables: %w", err)
		}
		out[strings.ToLower(name)] = engine
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysqlstore: check server: tables: %w", err)
	}
	return out, nil
}

// checkEngines returns a problem for each of tables that is missing from
// engines or not InnoDB.
func checkEngines(tables []string, engines map[string]string) []string {
	var out []string
	for _, name := range tables {
		engine, ok := engines[strings.ToLower(name)]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("table %s does not exist (run CreateTable or whycache init-schema)", name))
		case !strings.EqualFold(engine, "InnoDB"):
			out = append(out, fmt.Sprintf("table %s uses engine %s, not InnoDB: commits are not transactional and ids may be committed out of order", name, engine))
		}
	}
	return out
}

// pyCheckVars returns the problems the given server variables show for
// Python mode.
func pyCheckVars(v map[string]string) []string {
	if v["innodb_autoinc_lock_mode"] == "2" {
		return []string{"innodb_autoinc_lock_mode=2: one statement's AUTO_INCREMENT ids may interleave with another writer's, so in Python mode a commit of several records (a SetMulti larger than MaxUpdateSize) is refused"}
	}
	return nil
}

// checkVars returns the problems the given server variables show.
// Missing variables are not problems.
func checkVars(v map[string]string) []string {
	var out []string
	on := func(name string) bool {
		val, ok := v[name]
		return ok && (val == "1" || strings.EqualFold(val, "ON"))
	}
	num := func(name string) (int64, bool) {
		n, err := strconv.ParseInt(v[name], 10, 64)
		return n, err == nil
	}
	if on("read_only") || on("innodb_read_only") {
		out = append(out, "the server is read-only (a replica?): commits fail or, for privileged users, bypass the primary's id order")
	}
	if val, ok := v["autocommit"]; ok && !on("autocommit") {
		out = append(out, fmt.Sprintf("autocommit is %s on the pool's connections: reads would keep seeing an old snapshot", val))
	}
	for _, name := range []string{"transaction_isolation", "tx_isolation"} {
		if val, ok := v[name]; ok {
			if strings.EqualFold(strings.ReplaceAll(val, " ", "-"), "READ-UNCOMMITTED") {
				out = append(out, "isolation level READ-UNCOMMITTED: readers would see records of transactions that may still roll back")
			}
			break
		}
	}
	if n, ok := num("innodb_flush_log_at_trx_commit"); ok && n != 1 {
		out = append(out, fmt.Sprintf("innodb_flush_log_at_trx_commit=%d: a crash can lose committed records that readers already applied, and their ids would be given to other records", n))
	}
	if n, ok := num("sync_binlog"); ok && on("log_bin") && n != 1 {
		out = append(out, fmt.Sprintf("sync_binlog=%d with the binary log on: a crash can lose committed records from replication", n))
	}
	for _, pair := range [][2]string{
		{"replica_parallel_workers", "replica_preserve_commit_order"},
		{"slave_parallel_workers", "slave_preserve_commit_order"},
	} {
		workers, ok := num(pair[0])
		if _, known := v[pair[1]]; ok && known && workers > 1 && !on(pair[1]) {
			out = append(out, fmt.Sprintf("%s=%d without %s: a reader on this replica can see a record before an earlier one", pair[0], workers, pair[1]))
			break
		}
	}
	return out
}
