package main

import (
	"bytes"
	"flag"
	"time"

	"github.com/whycache/whycache"
)

func rewriteCommand() *command {
	return &command{
		name:    "rewrite-history",
		args:    "",
		summary: "compact the log to about one record per live key",
		help: `Replaces the log records with id <= --limit (default: the latest id) by a
minimal equivalent set: superseded writes and delete markers are dropped,
and so are keys under each --drop-prefix. Readers at any position end in
the same state as a full replay; machines whose state is behind the new
compaction horizon rebuild from the log on their next update (machines that
hold dropped keys keep them until then). --keep-deletes-above ID keeps the
delete markers of records above ID, so that machines at or past ID need no
rebuild. --dry-run computes the summary and changes nothing. Run it from
one machine at a time, e.g. as a periodic job.`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			limit := fs.Uint64("limit", 0, "rewrite records with ids up to `ID` (0: the latest)")
			var drop stringList
			fs.Var(&drop, "drop-prefix", "drop keys that start with `P` from the history (repeatable)")
			dry := fs.Bool("dry-run", false, "print what would change; change nothing")
			keepDeletes := fs.Uint64("keep-deletes-above", 0, "keep the delete markers of records above `ID` (0: drop all up to the limit)")
			return func(e *env, _ []string) error {
				for _, p := range drop {
					if p == "" {
						return usageErrorf("rewrite-history: --drop-prefix \"\" would drop every key")
					}
				}
				return e.rewrite(*limit, drop, *dry, *keepDeletes)
			}
		},
	}
}

// rewriteJSON is the --json output of rewrite-history.
type rewriteJSON struct {
	DryRun        bool     `json:"dry_run"`
	Limit         uint64   `json:"limit"`
	Horizon       uint64   `json:"horizon"`
	RecordsBefore uint64   `json:"records_before"`
	RecordsAfter  uint64   `json:"records_after"`
	BytesBefore   uint64   `json:"bytes_before"`
	BytesAfter    uint64   `json:"bytes_after"`
	LiveKeys      uint64   `json:"live_keys"`
	DroppedKeys   uint64   `json:"dropped_keys"`
	DropPrefixes  []string `json:"drop_prefixes"`
	Seconds       float64  `json:"seconds"`
}

func (e *env) rewrite(limit uint64, drop []string, dry bool, keepDeletesAbove uint64) error {
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	opts := whycache.RewriteOptions{DryRun: dry, KeepDeletesAbove: keepDeletesAbove}
	if len(drop) > 0 {
		opts.Filter = func(key, _ []byte) bool {
			for _, p := range drop {
				if bytes.HasPrefix(key, []byte(p)) {
					return false
				}
			}
			return true
		}
	}
	var p *progress
	var phase string
	opts.Progress = func(ph string, id, limit uint64) {
		if ph != phase {
			p.finish()
			p = e.newProgress("rewrite: "+ph, int64(limit), false)
			phase = ph
		}
		p.set(int64(id), int64(limit))
	}
	start := time.Now()
	if _, err := e.updateThroughHoles(s); err != nil { // Python mode rewrites up to the state's update id
		return wrap(err, "rewrite-history of %s: update", s.describe())
	}
	st, err := s.inst.RewriteHistoryStats(e.ctx, limit, opts)
	p.finish()
	if err != nil {
		return wrap(err, "rewrite-history of %s", s.describe())
	}
	took := time.Since(start)
	if drop == nil {
		drop = []string{}
	}
	if e.g.json {
		return writeJSON(e.stdout, rewriteJSON{
			DryRun: dry, Limit: st.Limit, Horizon: st.Horizon,
			RecordsBefore: st.RecordsBefore, RecordsAfter: st.RecordsAfter,
			BytesBefore: st.BytesBefore, BytesAfter: st.BytesAfter,
			LiveKeys: st.LiveKeys, DroppedKeys: st.FilteredKeys,
			DropPrefixes: drop, Seconds: took.Seconds(),
		})
	}
	verb := "rewrote"
	if dry {
		verb = "dry run: would rewrite"
	}
	e.printf("%s records up to id %d: %d -> %d records, %s -> %s; %d live keys, %d dropped by --drop-prefix; in %s\n",
		verb, st.Limit, st.RecordsBefore, st.RecordsAfter, formatBytes(int64(st.BytesBefore)), formatBytes(int64(st.BytesAfter)),
		st.LiveKeys, st.FilteredKeys, fmtDur(took))
	if st.Horizon > 0 {
		e.printf("compaction horizon raised to %d: machines behind it rebuild their state on their next update\n", st.Horizon)
	}
	return nil
}
