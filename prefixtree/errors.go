package prefixtree

import (
	"errors"

	"github.com/whycache/whycache/shm"
)

// Sentinel errors. Errors returned by this package wrap one of these or a
// shm sentinel.
var (
	// ErrNotFound is returned by Get for a key that is not in the map.
	ErrNotFound = errors.New("prefixtree: key not found")

	// ErrEmptyKey is returned for an empty key.
	ErrEmptyKey = errors.New("prefixtree: empty key")

	// ErrTooLarge is returned for a key or value longer than MaxKeySize or
	// MaxValueSize.
	ErrTooLarge = errors.New("prefixtree: key or value too large")

	// ErrCorrupt is shm.ErrCorrupt: the file's structures are damaged.
	ErrCorrupt = shm.ErrCorrupt

	// ErrWriterStuck is shm.ErrWriterStuck: a read waited
	// Options.ReadTimeout for a writer's batch that did not end (the
	// writer is stopped or hung); the message names the writer.
	ErrWriterStuck = shm.ErrWriterStuck

	// ErrReadOnly is shm.ErrReadOnly: a write or Check on a map opened
	// with Options.ReadOnly.
	ErrReadOnly = shm.ErrReadOnly
)

// Size limits of one entry.
const (
	MaxKeySize   = 1<<16 - 1
	MaxValueSize = 1<<31 - 1
)
