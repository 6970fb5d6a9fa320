package shm

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/whycache/whycache/internal/statedir"
	"golang.org/x/sys/unix"
)

// A new state file is written in full under a temporary name beside its
// path (".NAME.new-RANDOM") and then linked to the path, so another process
// never sees a half-initialized header. If another process won the race,
// its file is kept and the temporary file is removed.

// create creates the state file at path (Open).
func create(path string, opts Options) error {
	prefix := filepath.Join(filepath.Dir(path), createPrefix(filepath.Base(path)))
	removeStaleCreates(prefix)
	tmp := prefix + randomSuffix()
	fd, err := unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(opts.FileMode.Perm()))
	if err != nil {
		return fmt.Errorf("shm: create %s: %w", tmp, err)
	}
	defer unix.Close(fd)
	defer os.Remove(tmp)
	// The umask may have narrowed the mode; the option is what counts.
	if err := unix.Fchmod(fd, uint32(opts.FileMode.Perm())); err != nil {
		return fmt.Errorf("shm: chmod %s: %w", tmp, err)
	}
	if err := writeNewHeader(fd, opts); err != nil {
		return err
	}
	if err := unix.Link(tmp, path); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("shm: link %s: %w", path, err)
	}
	return nil
}

// createIn creates the state file name in dir (OpenIn): every step is
// relative to the directory's descriptor and follows no symbolic link.
func createIn(dir *statedir.Dir, name string, opts Options) error {
	prefix := createPrefix(name)
	removeStaleCreatesIn(dir, prefix)
	tmp := prefix + randomSuffix()
	// OpenFD gives a file it creates exactly opts.FileMode.
	fd, err := dir.OpenFD(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, opts.FileMode)
	if err != nil {
		return fmt.Errorf("shm: create state file: %w", err)
	}
	defer unix.Close(fd)
	defer dir.Remove(tmp)
	if err := writeNewHeader(fd, opts); err != nil {
		return err
	}
	if err := dir.Link(tmp, name); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("shm: create state file: %w", err)
	}
	return nil
}

// createPrefix is the name prefix of the temporary files that create the
// state file name.
func createPrefix(name string) string { return "." + name + ".new-" }

func randomSuffix() string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}

// writeNewHeader allocates the header page of a new file and writes it.
func writeNewHeader(fd int, opts Options) error {
	if err := unix.Fallocate(fd, 0, 0, PageSize); err != nil {
		return fmt.Errorf("shm: allocate header: %w: %w", ErrNoSpace, err)
	}
	h := make([]byte, PageSize)
	copy(h[offMagic:], Magic)
	binary.LittleEndian.PutUint32(h[offVersion:], FormatVersion)
	binary.LittleEndian.PutUint32(h[offEndian:], endianMarker)
	binary.LittleEndian.PutUint32(h[offPageSize:], PageSize)
	binary.LittleEndian.PutUint32(h[offHeaderSize:], HeapStart)
	binary.LittleEndian.PutUint64(h[offMaxSize:], uint64(opts.MaxSize))
	binary.LittleEndian.PutUint64(h[offCreated:], uint64(time.Now().UnixNano()))
	binary.LittleEndian.PutUint64(h[offSize:], PageSize)
	binary.LittleEndian.PutUint64(h[offBump:], HeapStart)
	for i, v := range opts.InitRoots {
		binary.LittleEndian.PutUint64(h[RootOffset(i):], v)
	}
	if err := pwriteAll(fd, h, 0); err != nil {
		return fmt.Errorf("shm: write header: %w", err)
	}
	return nil
}

// staleCreateAge is how old an unlinked-in creation file must be before
// create removes it: a process killed between creating and removing it left
// it behind (creating takes microseconds).
const staleCreateAge = time.Minute

// removeStaleCreates removes creation files (prefix + random suffix) older
// than staleCreateAge.
func removeStaleCreates(prefix string) {
	matches, _ := filepath.Glob(prefix + "*")
	for _, m := range matches {
		if st, err := os.Lstat(m); err == nil && st.Mode().IsRegular() && time.Since(st.ModTime()) > staleCreateAge {
			os.Remove(m)
		}
	}
}

// removeStaleCreatesIn removes the creation files in dir (prefix + random
// suffix) that are regular, owned by this process's user and older than
// staleCreateAge. Errors are ignored: a file it cannot remove stays.
func removeStaleCreatesIn(dir *statedir.Dir, prefix string) {
	names, _ := dir.Names()
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		st, err := dir.Lstat(n)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() {
			continue
		}
		if time.Since(time.Unix(st.Mtim.Unix())) > staleCreateAge {
			dir.Remove(n)
		}
	}
}
