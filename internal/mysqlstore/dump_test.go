package mysqlstore

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache/internal/mysqltest"
	"github.com/whycache/whycache/logstore"
)

// clientTools returns the dump and client programs (MariaDB's names
// first), or skips the test.
func clientTools(t *testing.T) (dump, client string) {
	t.Helper()
	for _, pair := range [][2]string{{"mariadb-dump", "mariadb"}, {"mysqldump", "mysql"}} {
		d, err1 := exec.LookPath(pair[0])
		c, err2 := exec.LookPath(pair[1])
		if err1 == nil && err2 == nil {
			return d, c
		}
	}
	t.Skip("neither mariadb-dump and mariadb nor mysqldump and mysql are installed: skipping the dump and restore test")
	return "", ""
}

// toolCommand returns a command running tool against the test
// server's database, the password passed in the environment.
func toolCommand(t *testing.T, tool string, args ...string) *exec.Cmd {
	t.Helper()
	cfg, err := mysql.ParseDSN(mysqltest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	var conn []string
	switch cfg.Net {
	case "unix":
		conn = []string{"--socket=" + cfg.Addr}
	default:
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			host, port = cfg.Addr, "3306"
		}
		conn = []string{"--protocol=TCP", "--host=" + host, "--port=" + port}
	}
	all := append(conn, "--user="+cfg.User)
	all = append(all, args...)
	all = append(all, cfg.DBName)
	cmd := exec.Command(tool, all...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+cfg.Passwd)
	return cmd
}

func TestRestoreDump(t *testing.T) {
	// An operator dumps the log with mariadb-dump (mysqldump), the log goes
	// on, and the dump is loaded back: readers past the dump are told,
	// whether no commit, one, a few or many have reused the lost ids.
	dumpTool, clientTool := clientTools(t)
	for _, after := range []int{0, 1, 3, 40} {
		t.Run(fmt.Sprintf("%d commits after the restore", after), func(t *testing.T) {
			s, _ := testStore(t, Options{})
			ctx := context.Background()
			commit := func(s logstore.Store, tag string, n int) logstore.Committed {
				t.Helper()
				recs := []logstore.Record{{Contents: recordOf(t, "hot", tag), SingleKey: []byte("hot")}}
				for i := 1; i < n; i++ {
					recs = append(recs, logstore.Record{Contents: recordOf(t, fmt.Sprint(tag, i), tag)})
				}
				c, err := s.Commit(ctx, logstore.LogID{}, recs)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			var kept []logstore.Committed
			for i := range 4 {
				kept = append(kept, commit(s, fmt.Sprint("kept", i), 1+i%3))
			}

			file := filepath.Join(t.TempDir(), "log.sql")
			var out, stderr bytes.Buffer
			cmd := toolCommand(t, dumpTool, "--single-transaction", "--hex-blob", "--tables")
			cmd.Args = append(cmd.Args, mysqltest.Tables(s.Table())...)
			cmd.Stdout, cmd.Stderr = &out, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v: %s", dumpTool, err, stderr.String())
			}
			if err := os.WriteFile(file, out.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}

			var lost []logstore.Committed
			for i := range 3 {
				lost = append(lost, commit(s, fmt.Sprint("lost", i), 2))
			}
			// A reader that applied everything polls on the live log.
			if v := verdictAt(t, s, lost[2].Position()); v != logstore.VerdictMatch {
				t.Fatalf("before the restore: verdict %v at the latest position", v)
			}

			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			stderr.Reset()
			cmd = toolCommand(t, clientTool)
			cmd.Stdin, cmd.Stderr = f, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s < dump: %v: %s", clientTool, err, stderr.String())
			}

			r := testStoreOn(t, mysqltest.DB(t), s.Table(), Options{}) // a process opening the restored log
			var last logstore.Committed
			for i := range after {
				last = commit(r, fmt.Sprint("new", i), 1+i%2)
			}
			// The old handle (statements prepared before the restore) and
			// the new one judge alike.
			for _, h := range []*Store{r, s} {
				res, err := h.Poll(ctx, logstore.PollRequest{}, func(logstore.Entry) error { return nil })
				if err != nil {
					t.Fatal(err)
				}
				latest := res.Latest
				if after > 0 && latest != last.Position() {
					t.Fatalf("restored log's latest %+v, want the new commit's %+v", latest, last.Position())
				}
				for _, c := range kept {
					if v := verdictAt(t, h, c.Position()); v != logstore.VerdictMatch {
						t.Errorf("position %+v from before the dump: %v, want match", c.Position(), v)
					}
				}
				for _, c := range lost {
					for _, pos := range []logstore.Position{c.Position(), {ID: c.First, Nonce: c.Nonce}} {
						want := logstore.VerdictMismatch
						if pos.ID > latest.ID {
							want = logstore.VerdictAhead
						}
						if v := verdictAt(t, h, pos); v != want {
							t.Errorf("lost position %+v (latest %+v): %v, want %v", pos, latest, v, want)
						}
					}
				}
			}
			if err := r.Check(ctx); err != nil {
				t.Errorf("Check of the restored log: %v", err)
			}
		})
	}
}
