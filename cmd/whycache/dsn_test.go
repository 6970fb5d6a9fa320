package main

import (
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"root@tcp(127.0.0.1:3306)/test", "root@tcp(127.0.0.1:3306)/test"},
		{"user:secret@tcp(db:3306)/app", "user:xxxxx@tcp(db:3306)/app"},
		{"user:@tcp(db:3306)/app", "user:xxxxx@tcp(db:3306)/app"},
		{"user:p@ss:w/rd@tcp(db:3306)/app?parseTime=true", "user:xxxxx@tcp(db:3306)/app?parseTime=true"},
		{"user:secret@unix(/var/run/mysqld/mysqld.sock)/app", "user:xxxxx@unix(/var/run/mysqld/mysqld.sock)/app"},
		{"user:secret@/app", "user:xxxxx@/app"},
		{"/app", "/app"},
		{"mysql:user:secret@tcp(db:3306)/app", "mysql:user:xxxxx@tcp(db:3306)/app"},
		{"mysql:root@tcp(db)/app", "mysql:root@tcp(db)/app"},
		{"file:/var/lib/whycache", "file:/var/lib/whycache"},
		{"user:secret@tcp(db:3306)", "user:xxxxx@tcp(db:3306)"},
		{"mysql://user:secret@db:3306/app", "mysql:xxxxx@db:3306/app"},
		{"/app?x=user:secret@host", "xxxxx@host"},
	} {
		if got := redactDSN(tc.in); got != tc.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedactDSN checks that a password the driver would parse out of a DSN
// never survives redaction.
func FuzzRedactDSN(f *testing.F) {
	for _, s := range []string{
		"user:secret@tcp(db:3306)/app",
		"u:p@ss/w:rd@tcp(h)/d?x=y",
		"mysql:u:pw@unix(/s)/d",
		"u:pw@/d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		got := redactDSN(dsn)
		cfg, err := mysql.ParseDSN(strings.TrimPrefix(dsn, "mysql:"))
		if err != nil || len(cfg.Passwd) < 4 {
			return // nothing the driver would use, or too short to tell apart
		}
		kept := strings.Replace(got, redactedPassword, "", 1)
		rest := strings.Replace(dsn, cfg.Passwd, "", 1)
		if strings.Count(kept, cfg.Passwd) > strings.Count(rest, cfg.Passwd) {
			t.Errorf("redactDSN(%q) = %q keeps password %q", dsn, got, cfg.Passwd)
		}
	})
}

// FuzzParseStoreHidesPassword checks that no message about a MySQL --store
// value, valid or not, shows its password, whatever the driver makes of
// the rest: the driver's own parse errors can quote what it took for an
// address, which is why parseStore does not show them.
func FuzzParseStoreHidesPassword(f *testing.F) {
	for _, s := range [][3]string{
		{"user", "pa/ss1234", "tcp(db:3306)"},
		{"user", "s3cret", "tcp(db:3306)/app"},
		{"u", "p@ss:w/rd", "unix(/run/mysqld.sock)/d?x=y"},
		{"u", "abc(def", "tcp(h"},
		{"", "pw12", "/app"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, user, pw, rest string) {
		if len(pw) < 4 || strings.Contains("mysql:"+user+":"+redactedPassword+"@"+rest, pw) || strings.Contains(pw, "@") || strings.Contains(pw, redactedPassword) || strings.ContainsAny(user, ":@/") {
			return // not a password by the DSN's grammar, or not one to tell apart
		}
		dsn := user + ":" + pw + "@" + rest
		shown := redactDSN("mysql:" + dsn)
		if strings.Contains(shown, pw) {
			t.Errorf("redactDSN(%q) = %q shows the password", dsn, shown)
		}
		spec, err := parseStore("mysql:" + dsn)
		if err != nil {
			// Only the redacted DSN may vary in the message: the rest is
			// fixed text (never the driver's).
			if fixed := strings.Replace(err.Error(), shown, "", 1); strings.Contains(fixed, rest) && len(rest) > 12 {
				t.Errorf("parseStore(%q): error %q shows more than the redacted DSN", dsn, err)
			}
			return
		}
		if strings.Contains(spec.String(), pw) {
			t.Errorf("parseStore(%q): %q shows the password", dsn, spec.String())
		}
	})
}
