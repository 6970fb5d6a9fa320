// Package mysqltest gives tests a MySQL or MariaDB server: the one
// WHYCACHE_TEST_DSN names (tests skip without it, saying how to enable
// them), pools on it, fresh table names dropped at cleanup, and copies of
// a log's tables restored the way loading a dump does.
//
// It knows nothing of the store: the store's tests and the Instance's
// tests build their stores on what it returns.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"io"
	"log"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// dsnEnv names the test server.
const dsnEnv = "WHYCACHE_TEST_DSN"

// SkipMessage is why the MySQL tests skip without a server.
const SkipMessage = "set WHYCACHE_TEST_DSN=user:pass@tcp(host:3306)/db to run the MySQL tests"

// DSN returns the test server's DSN, or skips the test.
func DSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		tb.Skip(SkipMessage)
	}
	return dsn
}

// Shown returns a DSN as messages may show it: parsed and formatted again
// without its password, or a placeholder.
func Shown(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(" + dsnEnv + ", not shown)"
	}
	cfg.Passwd = ""
	return cfg.FormatDSN()
}

// Connector returns a connector for the test server that sets extra
// session variables (given as name, value pairs) on every connection. It
// skips the test without a server.
func Connector(tb testing.TB, vars ...string) driver.Connector {
	tb.Helper()
	dsn := DSN(tb)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("%s %s: %v", dsnEnv, Shown(dsn), err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	for i := 0; i+1 < len(vars); i += 2 {
		cfg.Params[vars[i]] = vars[i+1]
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		tb.Fatalf("%s %s: %v", dsnEnv, Shown(dsn), err)
	}
	return c
}

// Open opens a pool through c, fails the test loudly if the server does
// not answer, and closes the pool at cleanup.
func Open(tb testing.TB, c driver.Connector) *sql.DB {
	tb.Helper()
	db := sql.OpenDB(c)
	tb.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		tb.Fatalf("MySQL test server %s unreachable: %v", Shown(os.Getenv(dsnEnv)), err)
	}
	return db
}

// DB returns a pool on the test server (session variables as in
// Connector), closed at cleanup, or skips the test without a server.
func DB(tb testing.TB, vars ...string) *sql.DB {
	tb.Helper()
	return Open(tb, Connector(tb, vars...))
}

// Table returns a fresh table name; the tables of a log of that name (see
// Tables) are dropped at cleanup.
func Table(tb testing.TB, db *sql.DB) string {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	table := "wct_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS `"+table+"`, `"+table+"_meta`, `"+table+"_marks`"); err != nil {
			tb.Errorf("drop test tables %s: %v", table, err)
		}
	})
	return table
}

// Tables returns the names of the three tables of the log table: the log,
// its meta table and its marks table.
func Tables(table string) []string {
	return []string{table, table + "_meta", table + "_marks"}
}

// CopyAside copies the three tables of the log table aside (CREATE TABLE
// .. LIKE, INSERT .. SELECT), as a backup would, and returns a function
// that restores them the way loading a dump does: each table dropped,
// created again and filled from the copy. The copies are dropped at
// cleanup.
func CopyAside(t *testing.T, db *sql.DB, table string) (restore func(t *testing.T)) {
	t.Helper()
	ctx := context.Background()
	exec := func(t *testing.T, q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, name := range Tables(table) {
		bak := "`" + name + "_bak`"
		exec(t, "DROP TABLE IF EXISTS "+bak)
		exec(t, "CREATE TABLE "+bak+" LIKE `"+name+"`")
		exec(t, "INSERT INTO "+bak+" SELECT * FROM `"+name+"`")
		t.Cleanup(func() {
			if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+bak); err != nil {
				t.Errorf("drop backup table %s: %v", bak, err)
			}
		})
	}
	return func(t *testing.T) {
		t.Helper()
		for _, name := range Tables(table) {
			bak := "`" + name + "_bak`"
			exec(t, "DROP TABLE `"+name+"`")
			exec(t, "CREATE TABLE `"+name+"` LIKE "+bak)
			exec(t, "INSERT INTO `"+name+"` SELECT * FROM "+bak)
		}
	}
}

// QuietDriver silences the driver's log of broken connections (for tests
// that break them on purpose) until the test ends.
func QuietDriver(tb testing.TB) {
	mysql.SetLogger(log.New(io.Discard, "", 0))
	tb.Cleanup(func() { mysql.SetLogger(log.New(os.Stderr, "[mysql] ", log.Ldate|log.Ltime|log.Lshortfile)) })
}
