package mysqlstore

import (
	"reflect"
	"strings"
	"testing"
)

// These tests need no server.

func TestTableNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"whycache", true},
		{"_t", true},
		{"T9_x", true},
		{"a" + strings.Repeat("b", 56), true},
		{"a" + strings.Repeat("b", 57), false}, // 58 characters: no room for _marks
		{"", false},
		{"9lives", false},
		{"a-b", false},
		{"a b", false},
		{"t`; DROP TABLE users; --", false},
		{"t`", false},
		{"t'", false},
		{`t"`, false},
		{"t;", false},
		{"db.t", false},
		{"t\x00", false},
		{"t\n", false},
		{"tbl\u00e9", false},
		{"t/*x*/", false},
	} {
		_, err := New(nil, tc.name, testSchema, Options{})
		if err == nil {
			t.Fatalf("New(nil, %q) succeeded with a nil *sql.DB", tc.name)
		}
		if got := validTable(tc.name) == nil; got != tc.ok {
			t.Errorf("validTable(%q) accepted=%v, want %v", tc.name, got, tc.ok)
		}
		if _, err := testSchema.For(tc.name); (err == nil) != tc.ok {
			t.Errorf("For(%q) error %v, want accepted=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSchemaStatements(t *testing.T) {
	if def, err := testSchema.For("whycache"); err != nil || def != string(testSchema) {
		t.Errorf("For(\"whycache\") differs from schema.sql (err %v)", err)
	}
	schema, err := testSchema.For("log_7")
	if err != nil {
		t.Fatal(err)
	}
	stmts := schemaStatements(schema)
	if len(stmts) != 3 {
		t.Fatalf("got %d statements, want 3: %q", len(stmts), stmts)
	}
	for i, want := range []string{"CREATE TABLE IF NOT EXISTS `log_7` (", "CREATE TABLE IF NOT EXISTS `log_7_meta` (", "CREATE TABLE IF NOT EXISTS `log_7_marks` ("} {
		if !strings.HasPrefix(stmts[i], want) {
			t.Errorf("statement %d starts %q, want %q", i, stmts[i][:min(len(stmts[i]), 60)], want)
		}
		if strings.Contains(stmts[i], ";") || strings.Contains(stmts[i], "--") || strings.Contains(stmts[i], "whycache") {
			t.Errorf("statement %d keeps a semicolon, comment or the default name: %q", i, stmts[i])
		}
	}
	if !strings.Contains(stmts[0], "contents MEDIUMBLOB NOT NULL") || !strings.Contains(stmts[0], "UNIQUE KEY single_key (single_key)") {
		t.Errorf("log table statement lacks the spec's columns: %q", stmts[0])
	}
}

func TestSchemaTables(t *testing.T) {
	schema, err := testSchema.For("t")
	if err != nil {
		t.Fatal(err)
	}
	defs, err := schemaTables(schema)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, d := range defs {
		for _, c := range d.columns {
			got[d.name] = append(got[d.name], c.name)
			if !strings.HasPrefix(c.def, c.name+" ") || strings.HasSuffix(c.def, ",") {
				t.Errorf("column %s of %s has definition %q", c.name, d.name, c.def)
			}
			// A column an upgrade adds to a table with rows needs a default
			// (or may be NULL).
			if c.name == "nonce" && d.name == "t" && !strings.Contains(c.def, "DEFAULT 0") {
				t.Errorf("column %s of %s has no default: %q", c.name, d.name, c.def)
			}
		}
	}
	want := map[string][]string{
		"t":       {"id", "single_key", "contents", "nonce"},
		"t_meta":  {"one", "log_id", "next_id", "horizon", "latest_nonce", "latest_us", "heartbeat_us"},
		"t_marks": {"last_id", "nonce", "commit_us"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("schema columns %v, want %v", got, want)
	}
	for _, bad := range []string{"DROP TABLE x;", "CREATE TABLE IF NOT EXISTS `x` (\n  PRIMARY KEY (id)\n);"} {
		if _, err := schemaTables(bad); err == nil {
			t.Errorf("schemaTables(%q) accepted it", bad)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name              string
		costs             []int
		maxRows, maxBytes int
		want              [][2]int
	}{
		{"empty", nil, 3, 100, nil},
		{"one", []int{10}, 3, 100, [][2]int{{0, 1}}},
		{"rows cap", []int{1, 1, 1, 1, 1, 1, 1}, 3, 100, [][2]int{{0, 3}, {3, 6}, {6, 7}}},
		{"bytes cap", []int{40, 40, 40, 40}, 10, 100, [][2]int{{0, 2}, {2, 4}}},
		{"exact fit", []int{50, 50, 50}, 10, 100, [][2]int{{0, 2}, {2, 3}}},
		{"oversized row alone", []int{10, 500, 10}, 10, 100, [][2]int{{0, 1}, {1, 2}, {2, 3}}},
		{"oversized first", []int{500, 10, 10}, 10, 100, [][2]int{{0, 1}, {1, 3}}},
		{"one row per statement", []int{1, 2, 3}, 1, 100, [][2]int{{0, 1}, {1, 2}, {2, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := splitByCost(tc.costs, tc.maxRows, tc.maxBytes)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("splitByCost(%v, %d, %d) = %v, want %v", tc.costs, tc.maxRows, tc.maxBytes, got, tc.want)
			}
			// Whatever the case: consecutive, covering, within the caps
			// unless a single row.
			next := 0
			for _, ch := range got {
				sum := 0
				for _, c := range tc.costs[ch[0]:ch[1]] {
					sum += c
				}
				if ch[0] != next || ch[1] <= ch[0] || ch[1]-ch[0] > tc.maxRows || (sum > tc.maxBytes && ch[1]-ch[0] > 1) {
					t.Errorf("bad chunk %v (sum %d) after %d", ch, sum, next)
				}
				next = ch[1]
			}
			if next != len(tc.costs) {
				t.Errorf("chunks cover %d of %d rows", next, len(tc.costs))
			}
		})
	}
}

func TestEscapedLen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"a'b", 4},
		{"\x00\n\r\\'\"\x1a", 14},
		{"\xff\x01", 2},
	} {
		if got := escapedLen([]byte(tc.in)); got != tc.want {
			t.Errorf("escapedLen(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestLimitsFor(t *testing.T) {
	for _, tc := range []struct {
		packet, want int
	}{
		{16 << 20, 16<<20 - stmtOverhead - maxSingleKey - rowOverhead},
		{64 << 20, 1<<24 - 1},
		{4 << 20, 4<<20 - stmtOverhead - maxSingleKey - rowOverhead},
		{1024, 0},
	} {
		got := limitsFor(tc.packet)
		if got.MaxRecordSize != tc.want || got.MaxSingleKeySize != 1024 {
			t.Errorf("limitsFor(%d) = %+v, want MaxRecordSize %d, MaxSingleKeySize 1024", tc.packet, got, tc.want)
		}
	}
}

func TestQueriesNameOnlyTheTable(t *testing.T) {
	q := newQueries("tbl")
	v := reflect.ValueOf(q)
	for i := range v.NumField() {
		text := v.Field(i).String()
		rest := strings.NewReplacer("`tbl_meta`", "", "`tbl_marks`", "", "`tbl`", "").Replace(text)
		if strings.Contains(rest, "`") || strings.Contains(rest, "tbl") {
			t.Errorf("query %s names something besides the tables: %q", v.Type().Field(i).Name, text)
		}
	}
	if got, want := q.replaceSQL(2), "REPLACE INTO `tbl` (id, single_key, contents, nonce) VALUES (?,?,?,?),(?,?,?,?)"; got != want {
		t.Errorf("replaceSQL(2) = %q, want %q", got, want)
	}
	if got, want := q.deleteSQL(2), "DELETE FROM `tbl` WHERE id IN (?,?) AND (id, LENGTH(contents), CRC32(contents)) IN ((?,?,?),(?,?,?))"; got != want {
		t.Errorf("deleteSQL(2) = %q, want %q", got, want)
	}
}

func TestCheckVars(t *testing.T) {
	good := map[string]string{
		"read_only": "0", "innodb_read_only": "0", "autocommit": "1",
		"tx_isolation": "REPEATABLE-READ", "innodb_flush_log_at_trx_commit": "1",
		"log_bin": "1", "sync_binlog": "1",
		"slave_parallel_workers": "4", "slave_preserve_commit_order": "ON",
	}
	with := func(k, v string) map[string]string {
		m := make(map[string]string, len(good)+1)
		for k2, v2 := range good {
			m[k2] = v2
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string // substring of the one problem, "" for none
	}{
		{"good", good, ""},
		{"nothing known", map[string]string{}, ""},
		{"read only", with("read_only", "1"), "read-only"},
		{"innodb read only", with("innodb_read_only", "ON"), "read-only"},
		{"autocommit off", with("autocommit", "0"), "autocommit is 0"},
		{"read uncommitted", with("tx_isolation", "READ-UNCOMMITTED"), "READ-UNCOMMITTED"},
		{"read committed is fine", with("tx_isolation", "READ-COMMITTED"), ""},
		{"lazy flush", with("innodb_flush_log_at_trx_commit", "2"), "innodb_flush_log_at_trx_commit=2"},
		{"lazy binlog", with("sync_binlog", "0"), "sync_binlog=0"},
		{"lazy binlog, no binlog", with("log_bin", "0"), ""},
		{"parallel out of order", with("slave_preserve_commit_order", "OFF"), "slave_parallel_workers=4"},
		{"one worker", with("slave_parallel_workers", "1"), ""},
		{"MariaDB (no preserve variable)", with("slave_preserve_commit_order", ""), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkVars(tc.vars)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("problems %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("problems %q, want one mentioning %q", got, tc.want)
			}
		})
	}
}

func TestCheckEngines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		table   string
		engines map[string]string // as engines returns them: lower-case names
		want    []string          // substrings, one per problem
	}{
		{"good", "t", map[string]string{"t": "InnoDB", "t_meta": "InnoDB", "t_marks": "InnoDB"}, nil},
		{"mixed-case name and engine", "T", map[string]string{"t": "innodb", "t_meta": "INNODB", "t_marks": "InnoDB"}, nil},
		{"missing", "t", map[string]string{}, []string{"table t does not exist", "table t_meta does not exist", "table t_marks does not exist"}},
		{"marks missing (an older version's tables)", "t", map[string]string{"t": "InnoDB", "t_meta": "InnoDB"}, []string{"table t_marks does not exist"}},
		{"myisam", "t", map[string]string{"t": "MyISAM", "t_meta": "InnoDB", "t_marks": "InnoDB"}, []string{"engine MyISAM"}},
		{"memory meta", "t", map[string]string{"t": "InnoDB", "t_meta": "MEMORY", "t_marks": "InnoDB"}, []string{"t_meta uses engine MEMORY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkEngines([]string{tc.table, tc.table + "_meta", tc.table + "_marks"}, tc.engines)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %q, want it to mention %q", got[i], w)
				}
			}
		})
	}
}
