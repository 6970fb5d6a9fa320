package whycache

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where
// the condition applies; test with errors.Is.
var (
	// ErrNotFound is returned by Get when the key is not in the state.
	ErrNotFound = errors.New("whycache: key not found")

	// ErrEmptyKey is returned when a key is empty. Keys are non-empty byte
	// strings.
	ErrEmptyKey = errors.New("whycache: empty key")

	// ErrTooLarge is returned when an item does not fit in one log record
	// of Options.MaxUpdateSize bytes, or in the state file.
	ErrTooLarge = errors.New("whycache: item too large")

	// ErrInvalidState is returned by reads while the shared state has never
	// been filled (no successful Update or LoadSnapshot since it was
	// created or deleted).
	ErrInvalidState = errors.New("whycache: shared state not valid")

	// ErrCorrupt is returned when a log record, state file or snapshot fails
	// validation. It also matches logstore.ErrCorrupt and shm.ErrCorrupt
	// causes.
	ErrCorrupt = errors.New("whycache: corrupt data")
)
