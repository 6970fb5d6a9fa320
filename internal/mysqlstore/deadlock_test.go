package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/logstore"
)

func TestDeadlockRetry(t *testing.T) {
	// A real deadlock: another session holds the row of key k and a lot of
	// work, a commit takes the counter row and waits for k, then the other
	// session asks for the counter row. The server rolls the commit back
	// (the lighter transaction); the commit retries as a new transaction
	// with a new nonce, and the log shows exactly one commit: its rows,
	// its nonce, its mark.
	s, db := testStore(t, Options{RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond})
	ctx := context.Background()
	table := s.Table()
	before, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: recordOf(t, "k", "0"), SingleKey: []byte("k")}})
	if err != nil {
		t.Fatal(err)
	}
	scratch := "`" + table + "_weight`"
	if _, err := db.Exec("CREATE TABLE " + scratch + " (n INT NOT NULL PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + scratch) })

	retried := make(chan error, 10)
	s.hookRetry = func(_ int, err error) { retried <- err }

	other, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := other.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec("BEGIN")
	// Weight: the server rolls back the transaction that changed fewer rows.
	for n := 0; n < 5000; n += 1000 {
		args := make([]any, 1000)
		for i := range args {
			args[i] = n + i
		}
		mustExec("INSERT INTO "+scratch+" (n) VALUES "+strings.TrimSuffix(strings.Repeat("(?),", len(args)), ","), args...)
	}
	var id uint64
	if err := other.QueryRowContext(ctx, "SELECT id FROM `"+table+"` WHERE single_key = 'k' FOR UPDATE").Scan(&id); err != nil {
		t.Fatal(err)
	}

	type result struct {
		c   logstore.Committed
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{
			{Contents: recordOf(t, "k", "1"), SingleKey: []byte("k")},
			{Contents: recordOf(t, "j", "1")},
		})
		done <- result{c, err}
	}()
	waitStatement(t, db, "REPLACE INTO `"+table+"`")
	// The commit holds the counter row and waits for k (or is about to):
	// asking for the counter row closes the cycle.
	if _, err := other.ExecContext(ctx, "UPDATE `"+table+"_meta` SET horizon = horizon WHERE one = 1"); err != nil {
		t.Fatalf("the other session was chosen as the deadlock victim (%v); the test needs the commit to be", err)
	}
	select {
	case err := <-retried:
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != erLockDeadlock {
			t.Fatalf("commit retried after %v, want deadlock 1213", err)
		}
	case r := <-done:
		t.Fatalf("commit returned %+v, %v without being retried", r.c, r.err)
	}
	mustExec("ROLLBACK")
	r := <-done
	if r.err != nil {
		t.Fatalf("Commit after the deadlock: %v", r.err)
	}
	if r.c.First != before.Last+1 || r.c.Last != r.c.First+1 || r.c.Nonce == 0 {
		t.Errorf("Commit after the deadlock = %+v; want ids %d..%d and a nonce", r.c, before.Last+1, before.Last+2)
	}
	marks := marksOf(t, s)
	if len(marks) != 2 || marks[before.Last] != before.Nonce || marks[r.c.Last] != r.c.Nonce {
		t.Errorf("marks %v, want one per commit: %d:%x and %d:%x", marks, before.Last, before.Nonce, r.c.Last, r.c.Nonce)
	}
	var entries []logstore.Entry
	if _, err := s.Poll(ctx, logstore.PollRequest{}, func(e logstore.Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].ID != r.c.First || entries[0].Nonce != r.c.Nonce || entries[1].Nonce != r.c.Nonce {
		t.Errorf("log holds %+v, want the retried commit's two records with its nonce", entries)
	}
	if v := verdictAt(t, s, before.Position()); v != logstore.VerdictMatch {
		t.Errorf("Poll at the replaced first commit: %v, want match", v)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// waitStatement waits until a session of the server runs a statement
// starting with prefix. (The process list is read rather than INNODB_TRX,
// which MariaDB fills from a cache and may show late.)
func waitStatement(t *testing.T, db *sql.DB, prefix string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ?", prefix+"%").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session running %q after 30 s", prefix)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
