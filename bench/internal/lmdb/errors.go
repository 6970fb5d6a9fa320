package lmdb

import "errors"

// ErrUnavailable is returned when LMDB cannot be used: the binary was built
// without cgo, or liblmdb could not be loaded.
var ErrUnavailable = errors.New("lmdb: unavailable")
