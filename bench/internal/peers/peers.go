// Package peers puts whycache and the caches users compare it with behind
// one small interface, so that the comparison runs the same workloads on
// each: bulk load, point reads, and batched overwrites.
//
// A System is prepared once per round in the parent process (Start: a
// server, a working directory) and then opened by child processes (Open)
// that load, read or write it. Systems differ in what processes may share:
// see Info.
package peers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/whycache/whycache/bench/internal/workload"
)

// Sharing says how processes see a system's data.
type Sharing string

// The kinds of sharing.
const (
	// PerProcess: every process holds its own copy; nothing is shared.
	PerProcess Sharing = "per process"
	// SharedMemory: processes map one file and read it without a server.
	SharedMemory Sharing = "shared mapping"
	// Server: processes talk to one server over loopback TCP.
	Server Sharing = "server (loopback TCP)"
)

// Info describes a system for the report.
type Info struct {
	Name    string  `json:"name"`
	Sharing Sharing `json:"sharing"`
	// WriterProcess is true when a writer in another process can run while
	// readers read; otherwise the comparison writes from a goroutine of the
	// reading process.
	WriterProcess bool `json:"writer_process"`
	// Durable is true when a completed write survives a crash of every
	// process (it is on disk, or in a log on disk).
	Durable bool `json:"durable"`
	// Memory names what "memory per key" measures for this system.
	Memory string `json:"memory"`
	// Notes are caveats shown under the table.
	Notes string `json:"notes,omitempty"`
}

// Mode is what a child process does with a system.
type Mode string

// The modes of Open.
const (
	// ModeLoad: bulk-load the workload, then read (and, for systems
	// without WriterProcess, write from a goroutine while reading).
	ModeLoad Mode = "load"
	// ModeRead: read only (read-only where the system has such a mode).
	// Per-process systems load their own copy first.
	ModeRead Mode = "read"
	// ModeWrite: overwrite keys from a separate process.
	ModeWrite Mode = "write"
)

// Env is what a child needs to reach a prepared system. It travels to
// children as JSON.
type Env struct {
	Dir   string `json:"dir"`             // working directory on disk, removed after the round
	State string `json:"state,omitempty"` // whycache: the state file
	Addr  string `json:"addr,omitempty"`  // servers: host:port on loopback
}

// System is one cache under comparison. Its methods are safe for
// concurrent use.
type System interface {
	Info() Info
	// Check reports missing prerequisites with an error wrapping
	// ErrMissing (a *MissingError names the Debian packages to install).
	Check() error
	// Version returns the version of the system's software, or "".
	Version() string
	// Start prepares the system in dir for one round and returns how to
	// reach it and a function that stops and cleans up what Start
	// started (it must be called once, also after a failure later on).
	// ctx's end also stops started servers.
	Start(ctx context.Context, dir string) (Env, func() error, error)
	// Open connects this process to a started system.
	Open(env Env, mode Mode) (Conn, error)
}

// Conn is one process's handle on a system. Get must not be called from
// several goroutines at once; Put may run concurrently with Get from one
// other goroutine. Close ends the handle.
type Conn interface {
	// Get appends the value of key to dst; found is false for a missing
	// key. With enough spare capacity in dst, implementations that can
	// avoid allocating do.
	Get(dst, key []byte) (out []byte, found bool, err error)
	// Put writes every item of b, in one transaction or batch where the
	// system has one.
	Put(b *workload.Batch) error
	Close() error
}

// Footprinter is implemented by a Conn whose memory per key is measured
// by the system itself (file size, server statistics); for others the
// caller measures the growth of its resident set.
type Footprinter interface {
	// Footprint returns the system's current size in bytes.
	Footprint() (int64, error)
}

// ErrMissing is wrapped by Check errors for missing prerequisites.
var ErrMissing = errors.New("peers: missing prerequisite")

// MissingError says what a system lacks.
type MissingError struct {
	System   string
	What     string   // e.g. "redis-server not in PATH"
	Packages []string // Debian packages that provide it; empty if none can
}

func (e *MissingError) Error() string {
	s := fmt.Sprintf("%s: %s", e.System, e.What)
	if len(e.Packages) > 0 {
		s += " (Debian: " + strings.Join(e.Packages, " ") + ")"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrMissing) true.
func (e *MissingError) Unwrap() error { return ErrMissing }

// All returns every system in report order; whycache is first.
func All() []System {
	return []System{Whycache{}, GoMap{}, Fastcache{}, Bbolt{}, LMDB{}, Redis{}, Memcached{}}
}

// Lookup returns the system called name.
func Lookup(name string) (System, bool) {
	for _, s := range All() {
		if s.Info().Name == name {
			return s, true
		}
	}
	return nil, false
}
