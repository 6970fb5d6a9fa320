package shm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whycache/whycache/internal/statedir"
	"github.com/whycache/whycache/internal/statedir/statedirtest"
	"golang.org/x/sys/unix"
)

// The tests of a machine shared with another user run as root (the victim)
// and start helper processes as statedirtest.UserName (the other user, who
// attacks). A helper is the test binary with sharedHelperEnv set: it runs
// one attack, prints one line saying what happened, and exits.

// sharedHelperEnv names the environment variable that turns the test binary
// into an attacking helper; it holds the JSON-encoded attackArgs.
const sharedHelperEnv = "WHYCACHE_SHM_ATTACKER"

// attackArgs tell an attacking helper what to do.
type attackArgs struct {
	Role string
	// Dir is the directory the attack plants things in.
	Dir string
	// Name is the state file name.
	Name string
	// Victim is a directory of the victim the planted links point into.
	Victim string
}

// plantedPayload is the value planted state files hold.
const plantedPayload = 666

// attacks maps a role to its body, which returns the line to print.
var attacks = map[string]func(a attackArgs) (string, error){
	// squat creates Dir (mode 0777) before the victim, a planted state file
	// in it, and links for the lock files pointing into Victim.
	"squat": func(a attackArgs) (string, error) {
		if err := os.Mkdir(a.Dir, 0o777); err != nil {
			return "", err
		}
		if err := os.Chmod(a.Dir, 0o777); err != nil {
			return "", err
		}
		return "planted", plant(a)
	},
	// plant puts a planted state file and lock links in Dir, which exists.
	"plant": func(a attackArgs) (string, error) { return "planted", plant(a) },
	// rename writes a planted state file under a name of its own in Dir
	// and renames it over Name; it reports "renamed" or "refused ERRNO".
	"rename": func(a attackArgs) (string, error) {
		own := filepath.Join(a.Dir, ".attacker-"+a.Name)
		os.Remove(own)
		if err := writePlanted(own); err != nil {
			return "", err
		}
		if err := os.Rename(own, filepath.Join(a.Dir, a.Name)); err != nil {
			os.Remove(own)
			var errno unix.Errno
			if errors.As(err, &errno) {
				return "refused " + unix.ErrnoName(errno), nil
			}
			return "", err
		}
		return "renamed", nil
	},
}

// plant writes a planted state file at Dir/Name (mode 0666) and links
// Name.lock and Name.follow to files in Victim.
func plant(a attackArgs) error {
	state := filepath.Join(a.Dir, a.Name)
	if err := writePlanted(state); err != nil {
		return err
	}
	if err := os.Chmod(state, 0o666); err != nil {
		return err
	}
	for _, suffix := range []string{".lock", ".follow"} {
		if err := os.Symlink(filepath.Join(a.Victim, "through"+suffix), state+suffix); err != nil {
			return err
		}
	}
	return nil
}

// writePlanted writes a valid state file whose list holds plantedPayload.
func writePlanted(path string) error {
	f, err := Open(path, Options{Walk: listWalk, FileMode: 0o644})
	if err != nil {
		return err
	}
	tx, err := beginPush(f, plantedPayload)
	if err == nil {
		err = tx.Commit()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestSharedHelper is the entry point of attacking helpers; it returns at
// once in a normal test run.
func TestSharedHelper(t *testing.T) {
	raw := os.Getenv(sharedHelperEnv)
	if raw == "" {
		return
	}
	var a attackArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		procExit(err)
	}
	attack := attacks[a.Role]
	if attack == nil {
		procExit(fmt.Errorf("unknown attack %q", a.Role))
	}
	line, err := attack(a)
	if err == nil {
		procSay(line)
	}
	procExit(err)
}

// sharedMachine is the setting of a test: the other user, a public
// directory, the test binary runnable by that user, a shared directory
// like /dev/shm (root's, mode 1777) and a private directory of the victim.
type sharedMachine struct {
	user   statedirtest.User
	public string
	binary string
	shm    string
	victim string
}

func newSharedMachine(t *testing.T) *sharedMachine {
	t.Helper()
	m := &sharedMachine{user: statedirtest.NeedUser(t), public: statedirtest.PublicDir(t)}
	m.binary = statedirtest.Binary(t, m.public)
	m.shm = filepath.Join(m.public, "shm")
	must(t, os.Mkdir(m.shm, 0o755))
	must(t, os.Chmod(m.shm, 0o777|os.ModeSticky))
	m.victim = filepath.Join(m.public, "victim")
	must(t, os.Mkdir(m.victim, 0o700))
	return m
}

// attack runs an attacking helper as the other user and returns its line.
func (m *sharedMachine) attack(t *testing.T, a attackArgs) string {
	t.Helper()
	raw, err := json.Marshal(a)
	must(t, err)
	cmd := m.user.Command(m.binary, m.public, "-test.run=^TestSharedHelper$")
	cmd.Env = append(os.Environ(), sharedHelperEnv+"="+string(raw))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("attack %s as %s: %v: %s", a.Role, statedirtest.UserName, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// noFileThroughLinks fails the test if a file was created where the
// planted links point.
func (m *sharedMachine) noFileThroughLinks(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(m.victim)
	must(t, err)
	for _, e := range ents {
		t.Errorf("%s was created through a planted link", filepath.Join(m.victim, e.Name()))
	}
}

// wantUnsafe fails the test unless err wraps statedir.ErrUnsafe and says
// every one of words.
func wantUnsafe(t *testing.T, err error, words ...string) {
	t.Helper()
	if !errors.Is(err, statedir.ErrUnsafe) {
		t.Fatalf("err = %v, want statedir.ErrUnsafe", err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// TestSquattedDirectoryRefused: the other user creates the state directory
// first (mode 0777) with a planted state file and links for the lock
// files. Opening the state the way the victim did (the path, following
// links) reads the planted value and creates files through the links; the
// checked directory refuses it, saying who owns it and what to remove, and
// nothing is created through the links.
func TestSquattedDirectoryRefused(t *testing.T) {
	m := newSharedMachine(t)
	squatted := filepath.Join(m.shm, "whycache")
	if got := m.attack(t, attackArgs{Role: "squat", Dir: squatted, Name: "default.state", Victim: m.victim}); got != "planted" {
		t.Fatalf("attack: %s", got)
	}

	t.Run("by path, the victim is fed the planted state", func(t *testing.T) {
		f, err := Open(filepath.Join(squatted, "default.state"), Options{Walk: listWalk})
		must(t, err)
		defer f.Close()
		if got := listPayloads(f); len(got) != 1 || got[0] != plantedPayload {
			t.Fatalf("planted state reads %v", got)
		}
		fd, err := unix.Open(filepath.Join(squatted, "default.state.lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		must(t, err)
		unix.Close(fd)
		if _, err := os.Stat(filepath.Join(m.victim, "through.lock")); err != nil {
			t.Fatalf("the lock link was not followed: %v", err)
		}
		must(t, os.Remove(filepath.Join(m.victim, "through.lock")))
	})

	_, err := statedir.Open(squatted, statedir.Options{Create: true})
	wantUnsafe(t, err, squatted, fmt.Sprintf("owned by uid %d (%s)", m.user.UID, statedirtest.UserName), "rm -r "+squatted)
	t.Logf("refused: %v", err)
	m.noFileThroughLinks(t)
}

// TestPlantedFilesInSharedDirectoryRefused: in a shared directory (sticky,
// writable by all, like /dev/shm) the other user plants a state file and
// links for the lock files before the victim keeps its state there: the
// directory is accepted, but the planted state file and the links are
// refused, and nothing is created through the links.
func TestPlantedFilesInSharedDirectoryRefused(t *testing.T) {
	m := newSharedMachine(t)
	if got := m.attack(t, attackArgs{Role: "plant", Dir: m.shm, Name: "default.state", Victim: m.victim}); got != "planted" {
		t.Fatalf("attack: %s", got)
	}
	d, err := statedir.Open(m.shm, statedir.Options{})
	must(t, err)
	defer d.Close()
	if !d.Shared() {
		t.Fatal("a sticky directory writable by all is not shared")
	}
	owner := fmt.Sprintf("owned by uid %d (%s)", m.user.UID, statedirtest.UserName)
	for _, opts := range []Options{{Walk: listWalk}, {Walk: listWalk, ReadOnly: true}} {
		_, err = OpenIn(d, "default.state", opts)
		wantUnsafe(t, err, owner, "every user can create")
	}
	// Trusting the other user's group does not extend to a shared directory.
	dt, err := statedir.Open(m.shm, statedir.Options{Trust: statedir.Trust{Groups: []int{m.user.GID}}})
	must(t, err)
	_, err = OpenIn(dt, "default.state", Options{Walk: listWalk, ReadOnly: true})
	dt.Close()
	wantUnsafe(t, err, owner)
	for _, lock := range []string{"default.state.lock", "default.state.follow"} {
		_, err := d.OpenLock(lock, 0o600)
		wantUnsafe(t, err, "symbolic link", "rm "+d.Join(lock))
	}
	m.noFileThroughLinks(t)
}

// TestRenameOverStateRefused: a file the other user renames over the state
// path cannot feed the victim. In a directory that lets every user rename
// (mode 0777 without the sticky bit), the rename works and a process that
// opens the path reads the planted state: the checked directory is
// refused, and a process that had the state open sees it replaced. In a
// shared directory (sticky) the kernel refuses the rename over the
// victim's file; once the victim removed it, the other user's file can
// take the name, and is refused.
func TestRenameOverStateRefused(t *testing.T) {
	m := newSharedMachine(t)

	t.Run("directory writable by all", func(t *testing.T) {
		dir := filepath.Join(m.public, "open")
		must(t, os.Mkdir(dir, 0o700))
		newListFile(t, filepath.Join(dir, "x.state"), 3)
		follower, err := Open(filepath.Join(dir, "x.state"), Options{Walk: listWalk})
		must(t, err)
		defer follower.Close()
		must(t, os.Chmod(dir, 0o777))
		if got := m.attack(t, attackArgs{Role: "rename", Dir: dir, Name: "x.state"}); got != "renamed" {
			t.Fatalf("attack: %s", got)
		}
		f, err := Open(filepath.Join(dir, "x.state"), Options{Walk: listWalk, NoCreate: true})
		must(t, err)
		if got := listPayloads(f); len(got) != 1 || got[0] != plantedPayload {
			t.Fatalf("by path, the renamed file reads %v", got)
		}
		f.Close()
		if s, err := follower.CheckPath(); err != nil || s != PathReplaced {
			t.Fatalf("the follower's CheckPath: %v, %v; want replaced", s, err)
		}
		_, err = statedir.Open(dir, statedir.Options{})
		wantUnsafe(t, err, "every user", "chmod o-w "+dir)
	})

	t.Run("shared directory", func(t *testing.T) {
		d, err := statedir.Open(m.shm, statedir.Options{})
		must(t, err)
		defer d.Close()
		f, err := OpenIn(d, "y.state", Options{Walk: listWalk})
		must(t, err)
		defer f.Close()
		pushBlock(t, f, 1)
		if got := m.attack(t, attackArgs{Role: "rename", Dir: m.shm, Name: "y.state"}); got != "refused EPERM" {
			t.Fatalf("rename over the victim's file in a sticky directory: %s", got)
		}
		if s, err := f.CheckPath(); err != nil || s != PathCurrent {
			t.Fatalf("CheckPath after the refused rename: %v, %v", s, err)
		}
		must(t, d.Remove("y.state"))
		if got := m.attack(t, attackArgs{Role: "rename", Dir: m.shm, Name: "y.state"}); got != "renamed" {
			t.Fatalf("rename to the removed name: %s", got)
		}
		if s, err := f.CheckPath(); err != nil || s != PathReplaced {
			t.Fatalf("CheckPath after the other user took the name: %v, %v", s, err)
		}
		_, err = OpenIn(d, "y.state", Options{Walk: listWalk})
		wantUnsafe(t, err, fmt.Sprintf("owned by uid %d", m.user.UID))
	})
}
