// Package linux stops a build for any other system than Linux with one
// clear error. whycache needs Linux: the state file is a shared mapping
// grown with fallocate and locked with open file description locks
// (package shm), the state directory is checked through openat and fstat
// of Linux's stat layout (internal/statedir), and the file store syncs
// with fdatasync and reserves space with fallocate (internal/filestore).
//
// Those packages import this one for its side effect only:
//
//	import _ "github.com/whycache/whycache/internal/linux"
//
// so the go command compiles it before them and, on another system,
// stops at its error ("undefined: whycache_builds_only_on_Linux") instead
// of reporting theirs.
package linux
