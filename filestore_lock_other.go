//go:build !linux

package whycache

import (
	"errors"
	"os"
)

// errFsUnsupported is returned by NewFileStore on platforms without the
// Linux file-locking and syncing calls the file store relies on.
var errFsUnsupported = errors.New("whycache: filestore: only supported on Linux")

func fsDataSync(*os.File) error              { return errFsUnsupported }
func fsReserve(*os.File, int64, int64) error { return errFsUnsupported }
func fsSupported() error                     { return errFsUnsupported }
