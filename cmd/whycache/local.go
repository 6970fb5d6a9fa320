package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/whycache/whycache"

	"github.com/whycache/whycache/logstore"
)

// errLocalOnly is what the log of a local-only session answers: the
// command reads this machine's state and has no business with the log.
var errLocalOnly = errors.New("this command reads the local state only and does not open the log")

// localStore stands in for the log in sessions that only read the local
// state (get, ls and stats --local without --update): they then need
// neither access to the log nor its credentials, which a process that may
// only read the state (a web worker in the state's reader group) has no
// reason to hold. Every method fails with errLocalOnly.
type localStore struct{}

var _ logstore.Store = localStore{}

func (localStore) LatestUpdateID(context.Context) (uint64, error) { return 0, errLocalOnly }
func (localStore) ReadUpdates(context.Context, uint64, uint64, func(uint64, []byte) error) error {
	return errLocalOnly
}
func (localStore) Poll(context.Context, logstore.PollRequest, func(logstore.Entry) error) (logstore.PollResult, error) {
	return logstore.PollResult{}, errLocalOnly
}
func (localStore) Commit(context.Context, logstore.LogID, []logstore.Record) (logstore.Committed, error) {
	return logstore.Committed{}, errLocalOnly
}
func (localStore) Info(context.Context) (logstore.Info, error) { return logstore.Info{}, errLocalOnly }
func (localStore) Compact(context.Context, uint64, uint64, logstore.CompactFunc) (logstore.CompactStats, error) {
	return logstore.CompactStats{}, errLocalOnly
}
func (localStore) Reset(context.Context) error { return errLocalOnly }
func (localStore) Limits() logstore.Limits     { return logstore.Limits{} }
func (localStore) Close() error                { return nil }

// openLocal opens the instance on the state file the global flags name,
// read-only and without the log: it creates nothing, writes nothing, takes
// no lock, and works for a user who may only read the state file.
func (e *env) openLocal() (*session, error) {
	s := &session{store: localStore{}, table: e.g.table}
	if e.g.store != "" {
		spec, err := parseStore(e.g.store) // not used, but a bad one is still a mistake to report
		if err != nil {
			return nil, err
		}
		s.spec = spec
	}
	inst, err := e.openInstance(s.store, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missingState("read", e.statePathShown())
	}
	if err != nil {
		return nil, err
	}
	s.inst = inst
	s.closers = append(s.closers, inst.Close)
	if _, err := inst.Stats(nil); errors.Is(err, fs.ErrNotExist) {
		s.close()
		return nil, missingState("read", inst.StatePath())
	}
	return s, nil
}

// missingState explains a state file that does not exist to a read.
func missingState(what, path string) error {
	return fmt.Errorf("%s: there is no state file %s yet: run 'whycache update' to create and fill it", what, path)
}

// statePathShown returns the state file the global flags name, for
// messages.
func (e *env) statePathShown() string {
	if e.g.state != "" {
		return e.g.state
	}
	name := e.g.name
	if name == "" {
		name = "default"
	}
	return filepath.Join(whycache.DefaultStateDir(), name+".state")
}
