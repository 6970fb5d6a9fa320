// Package statedirtest gives tests of a machine shared with other users an
// unprivileged user to run processes as: tests that run as root create the
// system user UserName when it is missing and start copies of the test
// binary under its uid and gid. Without root, such tests are skipped with a
// message that says why.
package statedirtest

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	_ "github.com/whycache/whycache/internal/linux" // Linux only: a build for another system stops there
)

// UserName is the throwaway system user the tests run processes as.
const UserName = "whycache-test-user"

// User is the unprivileged user: its ids.
type User struct {
	UID, GID int
}

// NeedUser returns the test user, creating it (useradd --system, with a
// group of its own, no home and no login shell) when it does not exist. It
// skips the test when the process is not root, or when the user cannot be
// created, saying why.
func NeedUser(t testing.TB) User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipped: this test runs processes as another user (%s), which needs root; it runs as uid %d", UserName, os.Geteuid())
	}
	u, err := user.Lookup(UserName)
	if err != nil {
		out, aerr := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--shell", "/usr/sbin/nologin", UserName).CombinedOutput()
		// A test of another package may have created it meanwhile.
		if u, err = user.Lookup(UserName); err != nil {
			t.Skipf("skipped: the test user %s does not exist and useradd failed: %v: %s", UserName, aerr, out)
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("user %s: %v", UserName, err)
	}
	if uid == 0 {
		t.Fatalf("user %s has uid 0", UserName)
	}
	return User{UID: uid, GID: gid}
}

// PublicDir returns a new directory, removed when the test ends, that
// every user can traverse and list but only root can write (mode 0755),
// where the test can give the test user files and directories. It is made
// in os.TempDir(), which every user must be able to traverse.
func PublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "whycache-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Binary returns a copy of the running test binary in dir that every user
// may execute, for starting helper processes as the test user (the
// original may sit in a directory only its builder can enter).
func Binary(t testing.TB, dir string) string {
	t.Helper()
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, filepath.Base(os.Args[0]))
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Command returns a command that runs binary with args as u, with no
// supplementary groups, in dir.
func (u User) Command(binary, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{},
	}}
	return cmd
}
