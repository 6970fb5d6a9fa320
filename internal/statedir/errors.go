package statedir

import "errors"

// ErrUnsafe is returned when a directory or file fails a rule of the
// package (see the package documentation): it could be changed, replaced
// or planted by a user the caller does not trust. Errors that wrap it are
// *UnsafeError values.
var ErrUnsafe = errors.New("statedir: unsafe")

// UnsafeError is a refusal: which path, what is wrong with it and how to
// fix it. It wraps ErrUnsafe.
type UnsafeError struct {
	// Path is the directory or file refused.
	Path string
	// Problem says what is wrong, e.g. "owned by uid 1001 (mallory), not
	// by you (uid 0) or a user or group you trust".
	Problem string
	// Fix is the command or change that makes the path acceptable, e.g.
	// "remove it: rm -r /dev/shm/whycache-0".
	Fix string
}

// Error returns "statedir: unsafe: PATH: PROBLEM; to fix: FIX".
func (e *UnsafeError) Error() string {
	return ErrUnsafe.Error() + ": " + e.Path + ": " + e.Problem + "; to fix: " + e.Fix
}

// Unwrap returns ErrUnsafe.
func (e *UnsafeError) Unwrap() error { return ErrUnsafe }
