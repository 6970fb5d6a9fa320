package peers

import (
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
)

// ResidentBytes returns this process's resident set size after a garbage
// collection that returns freed memory to the system, so that two calls
// measure the growth of live memory between them.
func ResidentBytes() (int64, error) {
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("peers: resident set: %w", err)
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("peers: resident set: unexpected /proc/self/statm %q", b)
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("peers: resident set: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// fileSize returns the size of the file at path.
func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("peers: %w", err)
	}
	return st.Size(), nil
}
