package mariadbtest

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// count returns the rows of table t on db, or -1 if the table is missing.
func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	err := db.QueryRow("SELECT COUNT(*) FROM " + Database + "." + table).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}

// TestReplication: a row written on the primary reaches the replica;
// with replication stopped it does not, and after StartReplication it
// does.
func TestReplication(t *testing.T) {
	p := Shared(t)
	ctx := context.Background()
	pdb := p.PrimaryDB()
	if _, err := pdb.Exec("CREATE TABLE " + Database + ".mdbt_rows (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pdb.Exec("DROP TABLE " + Database + ".mdbt_rows") })
	if _, err := pdb.Exec("INSERT INTO " + Database + ".mdbt_rows VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, p.ReplicaDB(), "mdbt_rows"); n != 1 {
		t.Fatalf("replica has %d rows, want 1", n)
	}
	if err := p.StopReplication(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pdb.Exec("INSERT INTO " + Database + ".mdbt_rows VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := count(t, p.ReplicaDB(), "mdbt_rows"); n != 1 {
		t.Fatalf("replica with replication stopped has %d rows, want 1", n)
	}
	if err := p.StartReplication(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, p.ReplicaDB(), "mdbt_rows"); n != 2 {
		t.Fatalf("replica after StartReplication has %d rows, want 2", n)
	}
}

// TestServersAreSeparate: the two servers have their own server ids and
// ports, and Close ends both.
func TestServersAreSeparate(t *testing.T) {
	p := Shared(t)
	var a, b int
	if err := p.PrimaryDB().QueryRow("SELECT @@server_id").Scan(&a); err != nil {
		t.Fatal(err)
	}
	if err := p.ReplicaDB().QueryRow("SELECT @@server_id").Scan(&b); err != nil {
		t.Fatal(err)
	}
	if a == b || p.Primary.Port == p.Replica.Port {
		t.Fatalf("primary id %d port %d, replica id %d port %d: want different", a, p.Primary.Port, b, p.Replica.Port)
	}
}
