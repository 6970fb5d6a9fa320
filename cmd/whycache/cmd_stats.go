package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

func statsCommand() *command {
	return &command{
		name:    "stats",
		args:    "",
		summary: "keys, bytes, file size, update id and lag behind the log",
		help: `Prints the state's statistics: live keys and their bytes, the state file's
size, the update id and how far it is behind the log (records, and seconds
since the last applied update while behind). With --local the log is not
asked (latest id and lag are then unknown and shown as 0).

With --read-store the log is read from a replica, and the replica's own lag
is shown too: the replica's clock less the last heartbeat it received from
the primary (written by a 'whycache follow --heartbeat' somewhere in the
fleet). The lag in seconds is then the larger of the two.`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			local := fs.Bool("local", false, "read only the local state; do not ask the log for its latest id")
			return func(e *env, _ []string) error { return e.stats(*local) }
		},
	}
}

// statsJSON is the --json form of stats.
type statsJSON struct {
	Store       string     `json:"store"`
	StatePath   string     `json:"state_path"`
	Valid       bool       `json:"valid"`
	Keys        uint64     `json:"keys"`
	Tombstones  uint64     `json:"tombstones"`
	DataBytes   uint64     `json:"data_bytes"`
	FileBytes   int64      `json:"state_file_bytes"`
	HeapBytes   uint64     `json:"heap_bytes"`
	UpdateID    uint64     `json:"update_id"`
	LatestID    uint64     `json:"latest_id"`
	LagRecords  uint64     `json:"lag_records"`
	LagSeconds  float64    `json:"lag_seconds"`
	ReadLag     float64    `json:"read_lag_seconds"`
	LastApplied *time.Time `json:"last_applied,omitempty"`
	Commits     uint64     `json:"commits"`
	Recoveries  uint64     `json:"recoveries"`
	Rebuilds    uint64     `json:"rebuilds"`
	LastRebuild *time.Time `json:"last_rebuild,omitempty"`
	RebuildWhy  string     `json:"last_rebuild_cause,omitempty"`
}

func (e *env) stats(local bool) error {
	e.oneConn = true // a follower: one connection per server, closed when idle
	s, err := e.openFor(!local)
	if err != nil {
		return err
	}
	defer s.close()
	ctx := e.ctx
	if local {
		ctx = nil
	}
	st, err := s.inst.Stats(ctx)
	if err != nil {
		return wrap(err, "stats")
	}
	j := statsJSON{
		Store: s.describe(), StatePath: st.StatePath, Valid: st.Valid,
		Keys: st.Keys, Tombstones: st.Tombstones, DataBytes: st.DataBytes,
		FileBytes: st.FileSize, HeapBytes: st.HeapBytes,
		UpdateID: st.UpdateID, LatestID: st.LatestID,
		LagRecords: st.LagRecords, LagSeconds: st.LagSeconds, ReadLag: st.ReadLagSeconds,
		Commits: st.Commits, Recoveries: st.Recoveries,
		Rebuilds: st.Rebuilds, RebuildWhy: st.LastRebuildCause,
	}
	if !st.LastApplied.IsZero() {
		j.LastApplied = &st.LastApplied
	}
	if !st.LastRebuild.IsZero() {
		j.LastRebuild = &st.LastRebuild
	}
	if e.g.json {
		return writeJSON(e.stdout, j)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	valid := "valid"
	if !st.Valid {
		valid = "never filled: run 'whycache update'"
	}
	fmt.Fprintf(tw, "store\t%s\n", j.Store)
	fmt.Fprintf(tw, "state\t%s (%s)\n", st.StatePath, valid)
	fmt.Fprintf(tw, "keys\t%d (+%d tombstones)\n", st.Keys, st.Tombstones)
	fmt.Fprintf(tw, "data\t%s (%d bytes of keys and values)\n", formatBytes(int64(st.DataBytes)), st.DataBytes)
	fmt.Fprintf(tw, "state file\t%s (%d bytes)\n", formatBytes(st.FileSize), st.FileSize)
	fmt.Fprintf(tw, "update id\t%d\n", st.UpdateID)
	if local {
		fmt.Fprintf(tw, "latest id\t(not asked: --local)\n")
	} else {
		fmt.Fprintf(tw, "latest id\t%d\n", st.LatestID)
		fmt.Fprintf(tw, "lag\t%d records, %.1fs\n", st.LagRecords, st.LagSeconds)
		if s.readSpec.kind != "" {
			fmt.Fprintf(tw, "replica lag\t%.1fs (the replica's clock less the last heartbeat it holds; 0 when no 'whycache follow --heartbeat' writes them)\n", st.ReadLagSeconds)
		}
	}
	if !st.LastApplied.IsZero() {
		fmt.Fprintf(tw, "last applied\t%s (%s ago)\n", st.LastApplied.Format(time.RFC3339), time.Since(st.LastApplied).Round(time.Second))
	}
	fmt.Fprintf(tw, "commits\t%d state transactions, %d crash recoveries\n", st.Commits, st.Recoveries)
	if st.Rebuilds > 0 {
		fmt.Fprintf(tw, "rebuilds\t%d from the whole log; the last %s (%s ago): %s\n", st.Rebuilds,
			st.LastRebuild.Format(time.RFC3339), time.Since(st.LastRebuild).Round(time.Second), st.LastRebuildCause)
	} else {
		fmt.Fprintf(tw, "rebuilds\t0\n")
	}
	return tw.Flush()
}

func verifyCommand() *command {
	return &command{
		name:    "verify",
		args:    "",
		summary: "check the state file and the log (exit 4 if damaged)",
		help: `Walks the state file and checks its structure (allocator, index, ordered
map, counters, no entry newer than the state's position), then reads the
whole log and checks every record's framing and checksum and the log's
metadata. It holds the state's writer lock while it checks the state, so
writers on this machine wait; readers do not. Exits 0 when both are sound
and 4 when either is damaged, naming where (for the file store: segment
file and byte offset; for MySQL: the record id).

A damaged state is repaired by deleting the file and running 'whycache
update' (or importing a snapshot). A damaged log is not repaired by
whycache: restore the damaged segment or table from a backup; machines
stop applying the log before the damage until then.`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error { return e.verify() }
		},
	}
}

func (e *env) verify() error {
	e.oneConn = true // a follower: one connection per server, closed when idle
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	var stateErr error
	var st whycache.Stats
	if _, err := os.Stat(s.inst.StatePath()); err != nil {
		stateErr = err
	} else if stateErr = s.inst.Check(); stateErr == nil {
		st, stateErr = s.inst.Stats(nil)
	}
	var logErr error
	logChecked := false
	if ch, ok := s.store.(logstore.Checker); ok {
		logChecked = true
		logErr = ch.Check(e.ctx)
	}
	if e.g.json {
		out := struct {
			StatePath  string  `json:"state_path"`
			OK         bool    `json:"ok"`
			StateOK    bool    `json:"state_ok"`
			StateError string  `json:"state_error,omitempty"`
			Log        string  `json:"log"`
			LogChecked bool    `json:"log_checked"`
			LogOK      bool    `json:"log_ok"`
			LogError   string  `json:"log_error,omitempty"`
			Keys       uint64  `json:"keys"`
			Seconds    float64 `json:"seconds"`
		}{StatePath: s.inst.StatePath(), OK: stateErr == nil && logErr == nil, StateOK: stateErr == nil,
			Log: s.describe(), LogChecked: logChecked, LogOK: logErr == nil, Keys: st.Keys, Seconds: time.Since(start).Seconds()}
		if stateErr != nil {
			out.StateError = oneLine(stateErr)
		}
		if logErr != nil {
			out.LogError = oneLine(logErr)
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		if stateErr == nil {
			e.printf("state %s: ok (%d keys, %s)\n", s.inst.StatePath(), st.Keys, formatBytes(st.FileSize))
		}
		if logChecked && logErr == nil {
			e.printf("log %s: ok\n", s.describe())
		}
	}
	var errs []error
	code := exitFailure
	if stateErr != nil {
		errs = append(errs, wrap(stateErr, "state %s", s.inst.StatePath()))
		if errors.Is(stateErr, whycache.ErrCorrupt) {
			code = exitVerify
		}
	}
	if logErr != nil {
		errs = append(errs, wrap(logErr, "log %s", s.describe()))
		if errors.Is(logErr, logstore.ErrCorrupt) {
			code = exitVerify
		}
	}
	if len(errs) > 0 {
		return withCode(code, wrap(errors.Join(errs...), "verify"))
	}
	if !e.g.json {
		e.printf("verified in %s\n", fmtDur(time.Since(start)))
	}
	return nil
}
