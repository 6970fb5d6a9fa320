package filestore

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The system calls of the file store that only Linux has (and the
// retries of EINTR they need). Their errors carry no package prefix: the
// caller's message says which operation failed.

// dataSync flushes f's data and the metadata needed to read it back
// (its size) to stable storage.
func dataSync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
		}
	}
}

// reserve allocates disk blocks for n bytes at off without changing f's
// size, so that a following write there cannot fail for lack of space. A
// file system without fallocate support is not an error: the write then
// reports ENOSPC itself.
func reserve(f *os.File, off, n int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
		switch {
		case err == nil, errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		default:
			return fmt.Errorf("reserve %d bytes in %s: %w", n, f.Name(), err)
		}
	}
}
