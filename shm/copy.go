package shm

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/whycache/whycache/internal/statedir"
	"golang.org/x/sys/unix"
)

// CopyTo writes a copy of the file, as it is at one moment, to a new file
// at path (which must not exist). It holds the writer lock while it copies,
// so writers of every process wait (about 10 ms per 100 MB) while readers
// do not. The copy is a valid state file on its own, not retired, with no
// transaction in progress.
func (f *File) CopyTo(path string, mode os.FileMode) error {
	if mode == 0 {
		mode = 0o600
	}
	return f.copyTo(path, func() (int, error) {
		return unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, uint32(mode.Perm()))
	}, func() { os.Remove(path) })
}

// CopyToIn is CopyTo creating the copy as name in dir (see OpenIn): the
// name must not exist, and no symbolic link is followed.
func (f *File) CopyToIn(dir *statedir.Dir, name string, mode os.FileMode) error {
	if mode == 0 {
		mode = 0o600
	}
	return f.copyTo(dir.Join(name), func() (int, error) {
		return dir.OpenFD(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, mode)
	}, func() { dir.Remove(name) })
}

// copyTo copies the file into the descriptor create returns, holding the
// writer lock; remove removes the copy after a failure.
func (f *File) copyTo(path string, create func() (int, error), remove func()) error {
	tx, err := f.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	fd, err := create()
	if err != nil {
		return fmt.Errorf("shm: copy to %s: %w", path, err)
	}
	defer unix.Close(fd)
	m := f.mem
	bump := binary.LittleEndian.Uint64(m[offBump:])
	size := roundUp(bump, PageSize)
	if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
		remove()
		return fmt.Errorf("%w: copy to %s: %w", ErrNoSpace, path, err)
	}
	hdr := append([]byte(nil), m[:PageSize]...)
	binary.LittleEndian.PutUint64(hdr[offWriterPID:], 0)
	binary.LittleEndian.PutUint64(hdr[offJournalBytes:], 0)
	binary.LittleEndian.PutUint64(hdr[offSize:], size)
	binary.LittleEndian.PutUint64(hdr[offSeq:], atomicLoad(m, offSeq)&^(seqRetired|seqWriting))
	if err := pwriteAll(fd, hdr, 0); err != nil {
		remove()
		return fmt.Errorf("shm: copy to %s: %w", path, err)
	}
	const chunk = 8 << 20
	for off := uint64(PageSize); off < bump; off += chunk {
		end := min(off+chunk, bump)
		if err := pwriteAll(fd, m[off:end], int64(off)); err != nil {
			remove()
			return fmt.Errorf("shm: copy to %s: %w", path, err)
		}
	}
	return nil
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
