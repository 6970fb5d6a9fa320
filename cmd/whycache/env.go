package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/whycache/whycache"
)

// env is what a command runs with: its context (cancelled by SIGINT and
// SIGTERM), standard streams, environment and global flags. One env serves
// one command line, in one goroutine.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	g      globals
	// rebuild lets Update replace a state built from another log (the
	// --rebuild flag of update and follow).
	rebuild bool
	// createLog lets openStore create a log that does not exist
	// (init-schema).
	createLog bool
}

// globals are the flags every command accepts, before or after its name.
type globals struct {
	store    string // file:DIR or mysql:DSN
	table    string // MySQL table
	state    string // state file path
	name     string // instance name (state file in the default directory)
	json     bool   // machine-readable output
	progress string // auto, on or off
	// readTimeout bounds a read's wait for a writer that makes no progress.
	readTimeout time.Duration
}

// Progress modes of --progress.
const (
	progressAuto = "auto"
	progressOn   = "on"
	progressOff  = "off"
)

// defaultTable is the MySQL table when neither --table nor WHYCACHE_TABLE
// names one.
const defaultTable = "whycache"

// register adds the global flags to fs, with the values parsed so far as
// defaults (so flags given before the command carry over).
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.store, "store", g.store, "the change log: `file:DIR` or mysql:DSN (default $WHYCACHE_STORE)")
	fs.StringVar(&g.table, "table", g.table, "MySQL log `table` (default $WHYCACHE_TABLE, else \"whycache\")")
	fs.StringVar(&g.state, "state", g.state, "state file `path` (default $WHYCACHE_STATE, else the --name file)")
	fs.StringVar(&g.name, "name", g.name, "instance `name`: state file "+filepath.Join(whycache.DefaultStateDir(), "NAME.state")+" (default \"default\")")
	fs.BoolVar(&g.json, "json", g.json, "print JSON for scripts instead of text")
	fs.StringVar(&g.progress, "progress", g.progress, "progress line on stderr, `mode` auto (when stderr is a terminal), on or off")
	fs.DurationVar(&g.readTimeout, "read-timeout", g.readTimeout, "how long a read waits for a writer of the state that makes no progress before it fails naming it (between 10ms and 10m; default 10s)")
}

// Bounds of --read-timeout.
const (
	minReadTimeout = 10 * time.Millisecond
	maxReadTimeout = 10 * time.Minute
)

// resolve fills what the flags left empty from the environment and checks
// the combination.
func (g *globals) resolve(getenv func(string) string) error {
	if g.store == "" {
		g.store = getenv("WHYCACHE_STORE")
	}
	if g.table == "" {
		g.table = getenv("WHYCACHE_TABLE")
	}
	if g.table == "" {
		g.table = defaultTable
	}
	if g.state != "" && g.name != "" {
		return usageErrorf("--state and --name both choose the state file; give one")
	}
	if g.state == "" && g.name == "" {
		g.state = getenv("WHYCACHE_STATE")
	}
	if g.readTimeout != 0 && (g.readTimeout < minReadTimeout || g.readTimeout > maxReadTimeout) {
		return usageErrorf("--read-timeout %s: want a duration between %s and %s", g.readTimeout, minReadTimeout, maxReadTimeout)
	}
	switch g.progress {
	case "":
		g.progress = progressAuto
	case progressAuto, progressOn, progressOff:
	default:
		return usageErrorf("--progress %q: want auto, on or off", g.progress)
	}
	return nil
}

// printf writes to stdout. Write errors are ignored: a closed stdout has
// no reader left to tell.
func (e *env) printf(format string, args ...any) {
	fmt.Fprintf(e.stdout, format, args...)
}

// warnf writes one "whycache: warning: ..." line to stderr.
func (e *env) warnf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "whycache: warning: "+format+"\n", args...)
}
