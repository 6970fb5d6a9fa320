//go:build !cgo

package lmdb

import "fmt"

// Available reports that this build has no LMDB: it was built without cgo.
func Available() error {
	return fmt.Errorf("%w: built without cgo (install gcc and rebuild with CGO_ENABLED=1)", ErrUnavailable)
}

// Version returns "" (LMDB is unavailable).
func Version() string { return "" }

// Options configure Open.
type Options struct {
	ReadOnly bool
	MapSize  int64
	NoSync   bool
}

// Env is unusable in this build.
type Env struct{}

// Open fails: LMDB is unavailable.
func Open(string, Options) (*Env, error) { return nil, Available() }

// Get fails: LMDB is unavailable.
func (*Env) Get(dst, _ []byte) ([]byte, bool, error) { return dst, false, Available() }

// PutBatch fails: LMDB is unavailable.
func (*Env) PutBatch([]byte, int, []byte, int) error { return Available() }

// Close does nothing.
func (*Env) Close() error { return nil }
