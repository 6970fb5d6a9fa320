package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/redisnotify"
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
	// oneConn gives each MySQL pool one connection, closed when idle
	// (the commands that only follow the log: follow, update, stats,
	// verify, get and ls).
	oneConn bool
	// keepPrimary keeps a follower's idle connection to the primary when
	// it reads a replica (follow --heartbeat writes there every poll).
	keepPrimary bool
	// notif is the --notify notifier, once made.
	notif *redisnotify.Notifier
}

// globals are the flags every command accepts, before or after its name.
type globals struct {
	store string // file:DIR or mysql:DSN
	// readStore is the MySQL server the reads go to (a replica of store's).
	readStore string
	table     string // MySQL table
	format    string // the MySQL log's layout: formatGo or formatPython
	state     string // state file path
	name      string // instance name (state file in the default directory)
	json      bool   // machine-readable output
	progress  string // auto, on or off
	// readTimeout bounds a read's wait for a writer that makes no progress.
	readTimeout time.Duration
	// passwordFile holds the MySQL password.
	passwordFile string
	// trustOwners and trustGroups are comma-separated user and group
	// names or ids whose state directory and files are accepted.
	trustOwners, trustGroups string
	// fileMode is the mode of created state files, in octal.
	fileMode string
	// notify is the Redis server commits are announced on.
	notify, notifyChannel string
}

// Progress modes of --progress.
const (
	progressAuto = "auto"
	progressOn   = "on"
	progressOff  = "off"
)

// Log formats of --format.
const (
	formatGo     = "go"
	formatPython = "python"
)

// defaultTable is the MySQL table when neither --table nor WHYCACHE_TABLE
// names one.
const defaultTable = "whycache"

// register adds the global flags to fs, with the values parsed so far as
// defaults (so flags given before the command carry over).
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.store, "store", g.store, "the change log: `file:DIR` or mysql:DSN (default $WHYCACHE_STORE)")
	fs.StringVar(&g.readStore, "read-store", g.readStore, "read the log from `mysql:DSN`, a replica of the --store server (polls, reads, stats); writes and heartbeats go to --store (default $WHYCACHE_READ_STORE)")
	fs.StringVar(&g.table, "table", g.table, "MySQL log `table` (default $WHYCACHE_TABLE, else \"whycache\")")
	fs.StringVar(&g.format, "format", g.format, "the MySQL log's `format`: go, or python for the table of Python whycache, shared with Python processes (default $WHYCACHE_FORMAT, else go)")
	fs.StringVar(&g.state, "state", g.state, "state file `path` (default $WHYCACHE_STATE, else the --name file)")
	fs.StringVar(&g.name, "name", g.name, "instance `name`: state file "+filepath.Join(whycache.DefaultStateDir(), "NAME.state")+" (default \"default\")")
	fs.BoolVar(&g.json, "json", g.json, "print JSON for scripts instead of text")
	fs.StringVar(&g.progress, "progress", g.progress, "progress line on stderr, `mode` auto (when stderr is a terminal), on or off")
	fs.StringVar(&g.trustOwners, "trust-owner", g.trustOwners, "also accept a state directory and state file owned by these `users` (names or uids, comma-separated), e.g. the user the follow daemon runs as")
	fs.StringVar(&g.trustGroups, "trust-group", g.trustGroups, "also accept a state directory and state file owned by, or writable by, these `groups` (names or gids, comma-separated)")
	fs.StringVar(&g.fileMode, "file-mode", g.fileMode, "permissions of the state files this command creates, in octal: 0600 (the default) or, for readers in the directory's group, 0640")
	fs.StringVar(&g.notify, "notify", g.notify, "announce commits on, and let follow wake on, Redis pub/sub at `HOST:PORT` (password in $WHYCACHE_REDIS_PASSWORD); the default channel is named after the log")
	fs.StringVar(&g.notifyChannel, "notify-channel", g.notifyChannel, "the Redis pub/sub `channel` of --notify")
	fs.StringVar(&g.passwordFile, "password-file", g.passwordFile, "read the MySQL password from `FILE` (not readable by other users) instead of the DSN (or $WHYCACHE_PASSWORD)")
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
	if g.readStore == "" {
		g.readStore = getenv("WHYCACHE_READ_STORE")
	}
	if g.table == "" {
		g.table = getenv("WHYCACHE_TABLE")
	}
	if g.table == "" {
		g.table = defaultTable
	}
	if g.format == "" {
		g.format = getenv("WHYCACHE_FORMAT")
	}
	switch g.format {
	case "":
		g.format = formatGo
	case formatGo:
	case formatPython:
		if strings.HasPrefix(g.store, storeFile+":") {
			return usageErrorf("--format python works on a MySQL store only (--store mysql:DSN, the table Python whycache writes); Python whycache's file store is not supported")
		}
	default:
		return usageErrorf("--format %q: want go or python", g.format)
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

// trusted resolves --trust-owner and --trust-group to uids and gids.
func (g *globals) trusted() (uids, gids []int, err error) {
	parse := func(list, flagName string, lookup func(string) (string, error)) ([]int, error) {
		var out []int
		for _, name := range strings.Split(list, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			id := name
			if _, err := strconv.Atoi(name); err != nil {
				if id, err = lookup(name); err != nil {
					return nil, usageErrorf("--%s %q: %v", flagName, name, err)
				}
			}
			n, err := strconv.Atoi(id)
			if err != nil || n < 0 {
				return nil, usageErrorf("--%s %q: not a valid id", flagName, name)
			}
			out = append(out, n)
		}
		return out, nil
	}
	if uids, err = parse(g.trustOwners, "trust-owner", func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	}); err != nil {
		return nil, nil, err
	}
	gids, err = parse(g.trustGroups, "trust-group", func(n string) (string, error) {
		gr, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return gr.Gid, nil
	})
	return uids, gids, err
}

// stateFileMode parses --file-mode: 0 when not given. Modes that let others
// than the owner write are refused.
func (g *globals) stateFileMode() (os.FileMode, error) {
	if g.fileMode == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(g.fileMode, 8, 32)
	if err != nil || n > 0o777 {
		return 0, usageErrorf("--file-mode %q: want an octal mode such as 0600 or 0640", g.fileMode)
	}
	if n&0o022 != 0 {
		return 0, usageErrorf("--file-mode %#o lets others than the owner write the state: want 0600, 0640 or 0644", n)
	}
	if n&0o600 != 0o600 {
		return 0, usageErrorf("--file-mode %#o: the owner must be able to read and write the state", n)
	}
	return os.FileMode(n), nil
}
