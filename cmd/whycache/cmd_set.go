package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/whycache/whycache"
)

func setCommand() *command {
	return &command{
		name:    "set",
		args:    "KEY [VALUE]",
		summary: "write a value: commit to the log, then apply here",
		help: `Commits KEY=VALUE to the change log, then applies it to this machine's state
(every process here sees it at once; other machines after their next update).
With --stdin the value is read from standard input (binary safe), and VALUE
is not given. An empty VALUE is a value, not a delete. Prints the id of the
log record written ({"id": N} with --json). Use "--" before a VALUE that
starts with "-". With --ttl DURATION (10s, 5m, 1h30m) the item expires that
long from now, by this machine's clock: from then on get and ls on every
machine no longer show it.`,
		minArgs: 1, maxArgs: 2,
		setup: func(fs *flag.FlagSet) runFunc {
			stdin := fs.Bool("stdin", false, "read the value from standard input")
			ttl := fs.Duration("ttl", 0, "expire the item this long from now (0: never)")
			return func(e *env, args []string) error {
				switch {
				case *ttl < 0:
					return usageErrorf("set: --ttl %v is negative", *ttl)
				case *stdin && len(args) == 2:
					return usageErrorf("set: give VALUE or --stdin, not both")
				case !*stdin && len(args) == 1:
					return usageErrorf("set: missing VALUE (or pass --stdin) (see 'whycache set --help')")
				}
				var value []byte
				if *stdin {
					v, err := io.ReadAll(e.stdin)
					if err != nil {
						return wrap(err, "set: read standard input")
					}
					value = v
				} else {
					value = []byte(args[1])
				}
				return e.set(args[0], value, *ttl)
			}
		},
	}
}

// set writes key=value, expiring ttl from now when ttl is positive.
func (e *env) set(key string, value []byte, ttl time.Duration) error {
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	what := "set " + shownKey(key)
	var id uint64
	if ttl > 0 {
		id, err = s.inst.SetWithTTL(e.ctx, []byte(key), value, ttl)
	} else {
		id, err = s.inst.Set(e.ctx, []byte(key), value)
	}
	if err != nil && id == 0 {
		return writeError(what, err)
	}
	if err != nil {
		e.warnf("%s: %s", what, oneLine(err))
	}
	return e.reportWrite(s, what, id)
}

func delCommand() *command {
	return &command{
		name:    "del",
		args:    "KEY...",
		summary: "delete keys: commit to the log, then apply here",
		help: `Commits the deletion of every KEY (in one batch) to the change log, then
applies it to this machine's state. Deleting a missing key is not an error.
Prints the id of the last log record written ({"id": N} with --json).`,
		minArgs: 1, maxArgs: -1,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, args []string) error { return e.del(args) }
		},
	}
}

func (e *env) del(keys []string) error {
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	what := "del " + shownKey(keys[0])
	if len(keys) > 1 {
		what = fmt.Sprintf("del (%d keys)", len(keys))
	}
	bk := make([][]byte, len(keys))
	for i, k := range keys {
		bk[i] = []byte(k)
	}
	id, err := s.inst.DeleteMulti(e.ctx, bk)
	if err != nil && id == 0 {
		return writeError(what, err)
	}
	if err != nil {
		e.warnf("%s: %s", what, oneLine(err))
	}
	return e.reportWrite(s, what, id)
}

// reportWrite prints the record id of a write, and a note when the local
// state is not filled (the write then shows here only after an update).
func (e *env) reportWrite(s *session, what string, id uint64) error {
	if !s.inst.Valid() {
		e.warnf("%s: committed, but the state %s was never filled: run 'whycache update' to see it here", what, s.inst.StatePath())
	}
	if e.g.json {
		return writeJSON(e.stdout, struct {
			ID uint64 `json:"id"`
		}{id})
	}
	e.printf("%s: committed as log record %d\n", what, id)
	return nil
}

// writeError wraps the error of a write that committed nothing; an empty
// key is a usage error.
func writeError(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		err = wrap(err, "interrupted before the commit, nothing was committed")
	}
	err = wrap(err, "%s", what)
	if errors.Is(err, whycache.ErrEmptyKey) {
		return withCode(exitUsage, err)
	}
	return err
}
