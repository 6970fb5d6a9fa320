package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

func TestCheck(t *testing.T) {
	// Real damage to the tables, each found by Check and named.
	mysqltest.DSN(t) // skip once, not in every subtest
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, db *sql.DB, table string, commits []logstore.Committed) // nil: none
		want   string                                                                     // in the message (%[n]d: ids, see below); "" for no error
	}{
		{"healthy", nil, ""},
		{"flipped byte", func(t *testing.T, db *sql.DB, table string, cs []logstore.Committed) {
			flipByte(t, db, table, cs[1].First, 9)
		}, "row %[2]d: logstore: corrupt data: record checksum"},
		{"truncated record", func(t *testing.T, db *sql.DB, table string, cs []logstore.Committed) {
			damage(t, db, "UPDATE `"+table+"` SET contents = LEFT(contents, LENGTH(contents) - 3) WHERE id = ?", cs[2].Last)
		}, "row %[3]d: logstore: corrupt data"},
		{"row above the latest id", func(t *testing.T, db *sql.DB, table string, cs []logstore.Committed) {
			damage(t, db, "INSERT INTO `"+table+"` (id, contents, nonce) VALUES (?, ?, 7)", cs[3].Last+5, recordOf(t, "late", "x"))
		}, "row %[4]d is above the latest id %[5]d"},
		{"zero identity", func(t *testing.T, db *sql.DB, table string, _ []logstore.Committed) {
			damage(t, db, "UPDATE `"+table+"_meta` SET log_id = ?", make([]byte, 16))
		}, "zero log id"},
		{"counter at 0", func(t *testing.T, db *sql.DB, table string, _ []logstore.Committed) {
			damage(t, db, "UPDATE `"+table+"_meta` SET next_id = 0")
		}, "meta row has next_id 0"},
		{"row of another commit", func(t *testing.T, db *sql.DB, table string, cs []logstore.Committed) {
			damage(t, db, "UPDATE `"+table+"` SET nonce = ? WHERE id = ?", cs[0].Nonce, cs[2].First)
		}, "row %[6]d has nonce"},
		{"mark lost", func(t *testing.T, db *sql.DB, table string, cs []logstore.Committed) {
			damage(t, db, "DELETE FROM `"+table+"_marks` WHERE last_id = ?", cs[1].Last)
		}, "its commit's mark"},
		{"mark above the latest id", func(t *testing.T, db *sql.DB, table string, cs []logstore.Committed) {
			damage(t, db, "INSERT INTO `"+table+"_marks` (last_id, nonce, commit_us) VALUES (?, 5, 0)", cs[3].Last+1)
		}, "mark %[7]d is above the latest id"},
		{"latest commit without its mark", func(t *testing.T, db *sql.DB, table string, cs []logstore.Committed) {
			damage(t, db, "UPDATE `"+table+"_meta` SET latest_nonce = latest_nonce + 1")
		}, "meta row names latest nonce"},
		{"single key of another record", func(t *testing.T, db *sql.DB, table string, cs []logstore.Committed) {
			damage(t, db, "UPDATE `"+table+"` SET single_key = 'other' WHERE id = ?", cs[0].Last)
		}, "row %[8]d is indexed by single key \"other\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, db := testStore(t, Options{PageRows: 2})
			ctx := context.Background()
			var cs []logstore.Committed
			for i, n := range []int{1, 3, 2, 1} {
				recs := make([]logstore.Record, n)
				for j := range recs {
					key := fmt.Sprintf("k%d-%d", i, j)
					recs[j] = logstore.Record{Contents: recordOf(t, key, "v"), SingleKey: []byte(key)}
				}
				c, err := s.Commit(ctx, logstore.LogID{}, recs)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			if tc.damage != nil {
				tc.damage(t, db, s.Table(), cs)
			}
			err := s.Check(ctx)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check of a healthy log: %v", err)
				}
				return
			}
			want := tc.want
			if strings.Contains(want, "%") {
				want = fmt.Sprintf(want, 0, cs[1].First, cs[2].Last, cs[3].Last+5, cs[3].Last, cs[2].First, cs[3].Last+1, cs[0].Last)
			}
			if !errors.Is(err, logstore.ErrCorrupt) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Check: %v; want ErrCorrupt saying %q", err, want)
			}
			wantPrefixOnce(t, "Check", err)
			if strings.Count(err.Error(), "corrupt data") != 1 {
				t.Errorf("Check: %v; want the sentinel's text once", err)
			}
		})
	}
}

// damage runs one statement that damages a log.
func damage(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s changed %d rows, want 1", query, n)
	}
}

// flipByte flips one bit of byte at of the contents of row id.
func flipByte(t *testing.T, db *sql.DB, table string, id uint64, at int) {
	t.Helper()
	var c []byte
	if err := db.QueryRow("SELECT contents FROM `"+table+"` WHERE id = ?", id).Scan(&c); err != nil {
		t.Fatal(err)
	}
	c[at] ^= 0x10
	damage(t, db, "UPDATE `"+table+"` SET contents = ? WHERE id = ?", c, id)
}
