package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/whycache/whycache"
)

func statsCommand() *command {
	return &command{
		name:    "stats",
		args:    "",
		summary: "keys, bytes, file size, update id and lag behind the log",
		help: `Prints the state's statistics: live keys and their bytes, the state file's
size, the update id and how far it is behind the log (records, and seconds
since the last applied update while behind). With --local the log is not
asked (latest id and lag are then unknown and shown as 0).`,
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
	LastApplied *time.Time `json:"last_applied,omitempty"`
	Commits     uint64     `json:"commits"`
	Recoveries  uint64     `json:"recoveries"`
}

func (e *env) stats(local bool) error {
	s, err := e.open()
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
		return fmt.Errorf("stats: %w", err)
	}
	j := statsJSON{
		Store: s.describe(), StatePath: st.StatePath, Valid: st.Valid,
		Keys: st.Keys, Tombstones: st.Tombstones, DataBytes: st.DataBytes,
		FileBytes: st.FileSize, HeapBytes: st.HeapBytes,
		UpdateID: st.UpdateID, LatestID: st.LatestID,
		LagRecords: st.LagRecords, LagSeconds: st.LagSeconds,
		Commits: st.Commits, Recoveries: st.Recoveries,
	}
	if !st.LastApplied.IsZero() {
		j.LastApplied = &st.LastApplied
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
	}
	if !st.LastApplied.IsZero() {
		fmt.Fprintf(tw, "last applied\t%s (%s ago)\n", st.LastApplied.Format(time.RFC3339), time.Since(st.LastApplied).Round(time.Second))
	}
	fmt.Fprintf(tw, "commits\t%d state transactions, %d crash recoveries\n", st.Commits, st.Recoveries)
	return tw.Flush()
}

func verifyCommand() *command {
	return &command{
		name:    "verify",
		args:    "",
		summary: "check the state file's structure (exit 4 if damaged)",
		help: `Walks the state file and checks its structure (allocator, index, ordered
map, counters). It holds the state's writer lock while it runs, so writers
on this machine wait; readers do not. Exits 0 when the state is sound and 4
when it is damaged; a damaged state is repaired by deleting the file and
running 'whycache update' (or importing a snapshot).`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error { return e.verify() }
		},
	}
}

func (e *env) verify() error {
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := os.Stat(s.inst.StatePath()); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	start := time.Now()
	cerr := s.inst.Check()
	var st whycache.Stats
	if cerr == nil {
		st, cerr = s.inst.Stats(nil)
	}
	if e.g.json {
		out := struct {
			StatePath string  `json:"state_path"`
			OK        bool    `json:"ok"`
			Error     string  `json:"error,omitempty"`
			Keys      uint64  `json:"keys"`
			Seconds   float64 `json:"seconds"`
		}{s.inst.StatePath(), cerr == nil, "", st.Keys, time.Since(start).Seconds()}
		if cerr != nil {
			out.Error = oneLine(cerr)
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	}
	switch {
	case errors.Is(cerr, whycache.ErrCorrupt):
		return withCode(exitVerify, fmt.Errorf("verify %s: %w", s.inst.StatePath(), cerr))
	case cerr != nil:
		return fmt.Errorf("verify %s: %w", s.inst.StatePath(), cerr)
	}
	if !e.g.json {
		e.printf("%s: ok (%d keys, %s) in %s\n", s.inst.StatePath(), st.Keys, formatBytes(st.FileSize), fmtDur(time.Since(start)))
	}
	return nil
}
