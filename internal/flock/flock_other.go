//go:build !unix

package flock

import "errors"

// TryLock reports errors.ErrUnsupported: flock exists on Unix only.
func TryLock(int) (bool, error) { return false, errors.ErrUnsupported }

// Unlock reports errors.ErrUnsupported: flock exists on Unix only.
func Unlock(int) error { return errors.ErrUnsupported }
