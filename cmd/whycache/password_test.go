package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// runWithEnv runs the command with extra environment variables.
func runWithEnv(t *testing.T, extra []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(cliEnv(), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %q: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// TestPasswordKeptOffCommandLines gives the MySQL password through
// $WHYCACHE_PASSWORD and --password-file (so that ps never shows it), and
// checks that no message shows it: a wrong password, a password with a '/'
// in a DSN without a database, a password file other users can read.
func TestPasswordKeptOffCommandLines(t *testing.T) {
	dsn := os.Getenv("WHYCACHE_TEST_DSN")
	if dsn == "" {
		t.Skip("set WHYCACHE_TEST_DSN=user:pass@tcp(host:3306)/db to run the MySQL tests")
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const user, password = "whycache_pw_test", "S3cret/pw@x:y"
	for _, q := range []string{
		"DROP USER IF EXISTS '" + user + "'@'%'",
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'",
		"GRANT ALL ON `" + cfg.DBName + "`.* TO '" + user + "'@'%'",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { db.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	store := "mysql:" + user + "@" + cfg.Net + "(" + cfg.Addr + ")/" + cfg.DBName
	table := randomTable(t, dsn)
	state := filepath.Join(t.TempDir(), "s.state")
	base := []string{"--store", store, "--table", table, "--state", state}
	noLeak := func(what string, r result) {
		t.Helper()
		if strings.Contains(r.stdout+r.stderr, password) || strings.Contains(r.stdout+r.stderr, "wrong-Pa55word") {
			t.Errorf("%s: the password shows in the output:\n%s%s", what, r.stdout, r.stderr)
		}
	}
	r := runWithEnv(t, []string{passwordEnv + "=" + password}, append(base, "init-schema")...)
	noLeak("init-schema", r)
	if r.code != 0 {
		t.Fatalf("init-schema with $%s: exit %d: %s", passwordEnv, r.code, r.stderr)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runWithEnv(t, nil, append([]string{"--password-file", pwFile}, append(base, "set", "k", "v")...)...)
	noLeak("set with --password-file", r)
	if r.code != 0 {
		t.Fatalf("set with --password-file: exit %d: %s", r.code, r.stderr)
	}
	r = runWithEnv(t, []string{passwordEnv + "=wrong-Pa55word"}, append(base, "update")...)
	noLeak("a wrong password", r)
	if r.code != exitFailure {
		t.Errorf("update with a wrong password: exit %d, want %d", r.code, exitFailure)
	}
	r = runWithEnv(t, []string{passwordEnv + "=" + password}, append([]string{"--password-file", pwFile}, append(base, "update")...)...)
	noLeak("the password twice", r)
	if r.code != exitUsage || !strings.Contains(r.stderr, "given twice") {
		t.Errorf("password given twice: exit %d, %s", r.code, r.stderr)
	}
	if err := os.Chmod(pwFile, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runWithEnv(t, nil, append([]string{"--password-file", pwFile}, append(base, "update")...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "chmod o-r") {
		t.Errorf("a password file every user can read: exit %d, %s", r.code, r.stderr)
	}
	// A password with a '/' in a DSN without a database: the driver takes
	// part of the password for the database and its error quotes the rest.
	r = runWithEnv(t, nil, "--store", "mysql:"+user+":"+password+"@tcp(127.0.0.1:1)", "--state", state, "update")
	noLeak("a DSN without a database", r)
	if r.code != exitUsage {
		t.Errorf("a DSN without a database: exit %d: %s", r.code, r.stderr)
	}
}
