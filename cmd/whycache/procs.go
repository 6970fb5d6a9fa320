package main

import "runtime"

// setProcs runs the process on n cores (GOMAXPROCS) for a long-running
// command; 0 keeps Go's default (the GOMAXPROCS environment variable, or
// every core). It is called before the command opens or starts anything.
func setProcs(command string, n int) error {
	if n < 0 {
		return usageErrorf("%s: --procs %d: want 1 or more cores, or 0 for Go's default", command, n)
	}
	if n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return nil
}
