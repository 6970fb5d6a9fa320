//go:build !linux

package linux

// This file is compiled only for a system other than Linux, and it does
// not compile: see the package documentation.
const _ = whycache_builds_only_on_Linux
