package shm

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these.
var (
	// ErrCorrupt is returned when a file is not a valid state file: wrong
	// magic, unsupported format version, other endianness or page size,
	// truncation, or a structure that fails Check.
	ErrCorrupt = errors.New("shm: corrupt state file")

	// ErrNoSpace is returned when the file cannot grow: the disk is full or
	// the file reached Options.MaxSize. The transaction that needed the
	// space can be rolled back; earlier data stays readable.
	ErrNoSpace = errors.New("shm: no space left for the state file")

	// ErrTooLarge is returned by Alloc for a size no block can have.
	ErrTooLarge = errors.New("shm: allocation too large")

	// ErrClosed is returned by methods of a closed File or finished Tx.
	ErrClosed = errors.New("shm: file closed")

	// ErrRetired is returned by ReadBegin and Begin once the file has been
	// retired (replaced by another state file or deleted). The caller
	// should reopen the path.
	ErrRetired = errors.New("shm: state file retired")

	// ErrWriterStuck is returned by ReadBegin (and so by every read of the
	// packages above) when a writer's write section has not ended within
	// Options.ReadTimeout: the writer is stopped (SIGSTOP, Ctrl-Z), hung,
	// or dead with nobody allowed to repair it. The message names the
	// writer's pid, what /proc says of it, how long the reader waited and
	// what to do. The read can be retried; nothing was changed.
	ErrWriterStuck = errors.New("shm: writer stuck")

	// ErrReadOnly is returned by Begin, BeginContext and the methods that
	// take the writer lock (Check, CopyTo) on a File opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("shm: state file opened read-only")
)
