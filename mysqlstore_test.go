package whycache

import (
	"os"
	"strings"
	"testing"
)

// TestMySQLSchemaFor checks the schema the root embeds and gives every
// MySQLStore: schema.sql as is for the default table, renamed for others,
// refused for names that are not plain identifiers.
func TestMySQLSchemaFor(t *testing.T) {
	file, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := MySQLSchemaFor("whycache"); err != nil || got != string(file) {
		t.Errorf("MySQLSchemaFor(\"whycache\") differs from schema.sql (err %v)", err)
	}
	got, err := MySQLSchemaFor("log_7")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"`log_7`", "`log_7_meta`", "`log_7_marks`"} {
		if !strings.Contains(got, "CREATE TABLE IF NOT EXISTS "+name) {
			t.Errorf("MySQLSchemaFor(\"log_7\") creates no table %s", name)
		}
	}
	if strings.Contains(got, "`whycache") {
		t.Errorf("MySQLSchemaFor(\"log_7\") still names the whycache tables")
	}
	if _, err := MySQLSchemaFor("a;b"); err == nil {
		t.Error("MySQLSchemaFor(\"a;b\") accepted")
	}
	if _, err := NewMySQLStore(nil, "whycache"); err == nil {
		t.Error("NewMySQLStore with a nil *sql.DB succeeded")
	}
}
