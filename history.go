package whycache

import (
	"context"
	"fmt"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// RewriteOptions configure RewriteHistory.
type RewriteOptions struct {
	// Filter keeps a key in the history when it returns true; nil keeps
	// all. Filtered keys are dropped from the log; states that have them
	// keep them until rebuilt (states behind the new compaction horizon
	// rebuild on their next Update).
	Filter func(key, value []byte) bool

	// KeepDeletesAbove keeps the delete markers of records with ids above
	// it (0 drops every delete marker up to the limit). Dropping a delete
	// marker raises the compaction horizon to its id, and states whose
	// UpdateID is below the horizon rebuild from the log on their next
	// Update; keeping recent markers spares machines that are slightly
	// behind that rebuild.
	KeepDeletesAbove uint64

	// DryRun computes the summary without changing the log.
	DryRun bool

	// Progress, if set, is called from time to time with the id of the
	// record being processed and the limit.
	Progress func(phase string, id, limit uint64)
}

// RewriteStats summarizes a history rewrite.
type RewriteStats struct {
	Limit         uint64 // records with ids <= Limit were rewritten
	Horizon       uint64 // compaction horizon the rewrite raised (or, dry, would raise); 0 if none
	RecordsBefore uint64
	RecordsAfter  uint64
	BytesBefore   uint64
	BytesAfter    uint64
	LiveKeys      uint64 // keys set at Limit (before filtering)
	FilteredKeys  uint64 // keys dropped by the filter
}

// RewriteHistory replaces the log records with id <= limit (0 means the
// latest id) by a minimal equivalent set: every record keeps its id and
// loses the items that later records (up to limit) supersede; records left
// empty are dropped, and so are delete markers and filtered keys, after the
// compaction horizon is raised so that states behind it rebuild. Readers
// at any position converge to the same state as a full replay. It works on
// every store, needs no free id space, and holds the key set in a
// temporary state file beside the state, not in memory.
func (c *Instance) RewriteHistory(ctx context.Context, limit uint64, opts RewriteOptions) error {
	_, err := c.RewriteHistoryStats(ctx, limit, opts)
	return err
}

// RewriteHistoryStats is RewriteHistory returning a summary. On a store
// whose ids commit out of order (Python mode) the limit is at most the
// state's update id after an Update: ids above it may still commit.
func (c *Instance) RewriteHistoryStats(ctx context.Context, limit uint64, opts RewriteOptions) (RewriteStats, error) {
	var st RewriteStats
	if opts.Filter != nil && logstore.TraitsOf(c.store).NoHorizon {
		return st, fmt.Errorf("%w: rewrite: this log keeps no compaction horizon (a Python whycache table), so keys cannot be dropped from it on purpose: machines that hold them would keep them unnoticed", logstore.ErrNotRepresentable)
	}
	latest, err := c.store.LatestUpdateID(ctx)
	if err != nil {
		return st, withContext("rewrite", err)
	}
	if limit == 0 || limit > latest {
		limit = latest
	}
	if logstore.TraitsOf(c.store).OutOfOrderIDs {
		// Ids up to the latest may still commit (a record that lands
		// between the passes below would be dropped as superseded): only
		// the ids the state holds, with every hole below resolved, are
		// rewritten.
		if err := c.Update(ctx); err != nil {
			return st, withContext("rewrite", err)
		}
		limit = min(limit, c.UpdateID())
	}
	st.Limit = limit
	if limit == 0 {
		return st, nil
	}
	info, err := c.store.Info(ctx)
	if err != nil {
		return st, withContext("rewrite", err)
	}
	// The final state at limit, in a temporary state file.
	final, tmp, err := c.newTempState("rewrite")
	if err != nil {
		return st, err
	}
	defer c.removeTemp(tmp)
	defer final.Close()
	ap := applier{ctx: ctx, t: final, logID: info.ID, noPurge: true}
	if opts.Progress != nil {
		ap.onBatch = func(pos logstore.Position) { opts.Progress("scan", pos.ID, limit) }
	}
	if err := ap.read(ctx, c.store, 1, limit); err != nil {
		return st, withContext("rewrite: read log", err)
	}
	if err := ap.flush(&logstore.Position{ID: limit}, true); err != nil {
		return st, withContext("rewrite", wrapStateErr(err))
	}
	st.LiveKeys = final.Len()

	// Pass 1: decide, count, and find the horizon the decisions need.
	d := rewriteDecider{final: final, filter: opts.Filter, keepDeletesAbove: opts.KeepDeletesAbove, filtered: map[string]bool{}}
	d.keepAllDeletes = logstore.TraitsOf(c.store).NoHorizon
	err = c.store.ReadUpdates(ctx, 1, limit, func(id uint64, contents []byte) error {
		_, _, err := d.decide(id, contents, &st)
		return err
	})
	if err != nil {
		return st, withContext("rewrite", err)
	}
	st.FilteredKeys = uint64(len(d.filtered))
	d.filtered = nil
	if opts.DryRun {
		st.Horizon = d.horizon // what the rewrite would raise it to
		return st, nil
	}
	// Pass 2: apply.
	horizon := d.horizon
	cs, err := c.store.Compact(ctx, limit, horizon, func(id uint64, contents []byte) ([]byte, bool, error) {
		if opts.Progress != nil && id%4096 == 0 {
			opts.Progress("compact", id, limit)
		}
		var scratch RewriteStats
		out, keep, err := d.decide(id, contents, &scratch)
		return out, keep, err
	})
	if err != nil {
		return st, withContext("rewrite", err)
	}
	st.Horizon = horizon
	st.RecordsBefore, st.RecordsAfter = cs.RecordsBefore, cs.RecordsAfter
	st.BytesBefore, st.BytesAfter = cs.BytesBefore, cs.BytesAfter
	return st, nil
}

// rewriteDecider decides what remains of each record.
type rewriteDecider struct {
	final            *prefixtree.Tree
	filter           func(key, value []byte) bool
	keepDeletesAbove uint64
	keepAllDeletes   bool            // the log keeps no horizon: every unsuperseded delete marker stays
	horizon          uint64          // highest id whose dropped items are not superseded
	filtered         map[string]bool // keys dropped by the filter (pass 1 only)
	items            []logstore.Item
	later            map[string]bool
}

// decide returns the record's new contents, or keep=false to drop it, and
// adds to the stats.
func (d *rewriteDecider) decide(id uint64, contents []byte, st *RewriteStats) ([]byte, bool, error) {
	d.items = d.items[:0]
	if err := logstore.DecodeRecord(contents, func(it logstore.Item) error {
		d.items = append(d.items, it)
		return nil
	}); err != nil {
		return nil, false, fmt.Errorf("%w: record %d: %w", ErrCorrupt, id, err)
	}
	st.RecordsBefore++
	st.BytesBefore += uint64(len(contents))
	kept := d.items[:0:0]
	if len(d.items) > 1 {
		clear(d.later)
		if d.later == nil {
			d.later = map[string]bool{}
		}
	}
	for i := len(d.items) - 1; i >= 0; i-- {
		it := d.items[i]
		if len(d.items) > 1 {
			if d.later[string(it.Key)] {
				continue // a later item of this record supersedes it
			}
			d.later[string(it.Key)] = true
		}
		_, finalID, live, err := d.final.GetEntry(it.Key)
		if err != nil {
			return nil, false, err
		}
		switch {
		case finalID != id:
			// Superseded by a later record: dropping it is safe everywhere.
		case (it.Delete || !live) && (d.keepAllDeletes || d.keepDeletesAbove != 0 && id > d.keepDeletesAbove):
			kept = append(kept, it) // a delete marker kept on purpose
		case it.Delete || !live:
			d.horizon = max(d.horizon, id) // a delete marker that nothing supersedes
		case d.filter != nil && !d.filter(it.Key, it.Value):
			d.horizon = max(d.horizon, id)
			if d.filtered != nil {
				d.filtered[string(it.Key)] = true
			}
		default:
			kept = append(kept, it)
		}
	}
	if len(kept) == 0 {
		return nil, false, nil
	}
	st.RecordsAfter++
	if len(kept) == len(d.items) {
		st.BytesAfter += uint64(len(contents))
		return contents, true, nil
	}
	for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
		kept[i], kept[j] = kept[j], kept[i]
	}
	out, err := logstore.AppendRecord(nil, kept)
	if err != nil {
		return nil, false, err
	}
	st.BytesAfter += uint64(len(out))
	return out, true, nil
}

// DeleteAllHistory empties the log (giving it a new identity) and deletes
// the local state. Other machines' states then follow a log that no longer
// exists: their Update fails with ErrLogMismatch until they are told to
// adopt the new log (Options.Rebuild = RebuildAnyLog, "whycache update
// --rebuild") or their state is deleted. Meant for tests.
func (c *Instance) DeleteAllHistory(ctx context.Context) error {
	if err := c.store.Reset(ctx); err != nil {
		return withContext("reset log", err)
	}
	return c.DeleteSharedState()
}
