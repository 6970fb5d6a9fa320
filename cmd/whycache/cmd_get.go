package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/whycache/whycache"
)

func getCommand() *command {
	return &command{
		name:    "get",
		args:    "KEY",
		summary: "print the value of a key",
		help: `Prints the value of KEY from this machine's state: a memory read, no log
access. The value is written to stdout as is (no newline added). With --json
it prints {"key": ..., "value": ...}, or "value_b64" (base64) for a value
that is not valid UTF-8. A missing key exits with code 3.

The state shows what this machine applied: run 'whycache update' (or the
follow daemon) to see other machines' writes, or pass --update.`,
		minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			update := fs.Bool("update", false, "apply new log records before reading")
			return func(e *env, args []string) error { return e.get(args[0], *update) }
		},
	}
}

func (e *env) get(key string, update bool) error {
	e.oneConn = true // a follower: one connection per server, closed when idle
	s, err := e.openFor(update)
	if err != nil {
		return err
	}
	defer s.close()
	what := "get " + shownKey(key)
	if err := e.maybeUpdate(s, update, what); err != nil {
		return err
	}
	v, err := s.inst.Get([]byte(key))
	switch {
	case errors.Is(err, whycache.ErrNotFound):
		return withCode(exitNotFound, fmt.Errorf("%s: key not found", what))
	case errors.Is(err, whycache.ErrInvalidState):
		return s.requireValid(what)
	case errors.Is(err, whycache.ErrEmptyKey):
		return withCode(exitUsage, fmt.Errorf("get: the key is empty"))
	case err != nil:
		return wrap(err, "%s", what)
	}
	if e.g.json {
		return writeJSON(e.stdout, newJSONItem([]byte(key), v, true))
	}
	_, err = e.stdout.Write(v)
	return err
}

// maybeUpdate applies new log records first when asked to.
func (e *env) maybeUpdate(s *session, update bool, what string) error {
	if !update {
		return nil
	}
	up, err := e.catchUp(s)
	if err != nil {
		return wrap(err, "%s: update", what)
	}
	if up.Rebuilt != nil {
		e.warnf("%s: rebuilt the state %s from the whole log: %s", what, s.inst.StatePath(), oneLine(up.Rebuilt))
	}
	return nil
}
