package whycache

import (
	"context"
	"errors"
	"time"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// Stats describes an instance's state and how far it is behind the log.
type Stats struct {
	StatePath   string    // the state file
	Valid       bool      // the state was filled (see Valid)
	Keys        uint64    // live keys
	Tombstones  uint64    // deleted keys whose ids are still kept
	DataBytes   uint64    // total length of live keys and values
	FileSize    int64     // bytes of the state file on disk
	HeapBytes   uint64    // bytes of the state file's heap in use or free
	UpdateID    uint64    // last record applied in order
	LatestID    uint64    // latest id in the log (0 if the store was not asked)
	LagRecords  uint64    // LatestID - UpdateID, when known
	LastApplied time.Time // when an Update last applied records (zero if never)
	LatestTime  time.Time // when the log's latest commit was made (zero if unknown or not asked)
	// ReadLagSeconds is how far the log as read (a replica) lags behind its
	// primary: the read server's clock less the last heartbeat it holds,
	// when somebody writes heartbeats (FollowOptions.Heartbeat); else 0.
	ReadLagSeconds float64
	// LagSeconds is how long the state has been behind: the larger of
	// ReadLagSeconds and, when LagRecords > 0, the time since LastApplied.
	LagSeconds float64
	Commits    uint64 // write transactions on the state file since it was created
	Recoveries uint64 // dead writers' transactions repaired since it was created
	// Rebuilds counts the times this machine's state was rebuilt from the
	// whole log because it could no longer follow it (a log restored from
	// a backup or failed over, compaction past the state's position,
	// another log with RebuildAnyLog), whichever process's Update, Set or
	// follow did it; carried to the state that replaces it (a rebuild, a
	// snapshot load), lost only when the state file is deleted
	// (DeleteSharedState, an operator). LastRebuild and LastRebuildCause ("log diverged", "history
	// compacted", "log mismatch") describe the latest; zero and "" when
	// there was none.
	Rebuilds         uint64
	LastRebuild      time.Time
	LastRebuildCause string
}

// Stats returns the state's statistics. With a non-nil ctx it also asks
// the store for the latest id to compute the lag; pass nil to read only the
// local state (no I/O).
func (c *Instance) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := c.withTree(func(t *prefixtree.Tree) error {
		f := t.File()
		size, err := f.FileSize()
		if err != nil {
			return err
		}
		// The counters and meta words of one committed batch.
		_, err = readStateWith(t, func(m stateMeta) {
			fs := f.Stats()
			st = Stats{
				StatePath:  c.path,
				Valid:      m.filled,
				Keys:       t.Len(),
				Tombstones: t.Tombstones(),
				DataBytes:  t.DataBytes(),
				FileSize:   size,
				HeapBytes:  fs.HeapBytes,
				UpdateID:   m.updateID,
				Commits:    fs.Commits,
				Recoveries: fs.Recoveries,
			}
			if m.appliedAt != 0 {
				st.LastApplied = time.Unix(0, int64(m.appliedAt))
			}
			st.Rebuilds, st.LastRebuildCause = m.rebuilds, m.rebuildBy.String()
			if m.rebuiltAt != 0 {
				st.LastRebuild = time.Unix(0, int64(m.rebuiltAt))
			}
		})
		return err
	})
	if err != nil || ctx == nil {
		return st, err
	}
	// One poll, stopped before it delivers anything: the log's figures in
	// one statement.
	res, err := c.store.Poll(ctx, logstore.PollRequest{After: logstore.Position{ID: st.UpdateID}, Max: 1}, func(logstore.Entry) error {
		return errStatsOnly
	})
	if err != nil && !errors.Is(err, errStatsOnly) {
		return st, withContext("stats", err)
	}
	st.applyView(viewOf(res))
	return st, nil
}

// errStatsOnly stops the poll of Stats before it delivers a record.
var errStatsOnly = errors.New("whycache: stats read only the log's figures")

// applyView fills the figures of st that come from the log, from what a
// poll showed.
func (st *Stats) applyView(v LogView) {
	st.LatestID, st.LatestTime = max(v.Latest.ID, v.HeldBack), v.LatestTime
	st.LagRecords, st.LagSeconds, st.ReadLagSeconds = 0, 0, 0
	if !v.Heartbeat.IsZero() && !v.ReadTime.IsZero() && v.ReadTime.After(v.Heartbeat) {
		st.ReadLagSeconds = v.ReadTime.Sub(v.Heartbeat).Seconds()
	}
	if st.LatestID > st.UpdateID {
		st.LagRecords = st.LatestID - st.UpdateID
		if !st.LastApplied.IsZero() {
			st.LagSeconds = time.Since(st.LastApplied).Seconds()
		}
	}
	st.LagSeconds = max(st.LagSeconds, st.ReadLagSeconds)
}

// Check verifies the structure of the state file (see prefixtree.Tree.Check)
// and what it says of the log (its meta words against its entries: no
// entry newer than the state's position). Errors wrap ErrCorrupt. It takes
// the state's writer lock while it checks the structure.
func (c *Instance) Check() error {
	return c.withTree(func(t *prefixtree.Tree) error {
		if err := t.Check(); err != nil {
			return err
		}
		return checkMeta(t)
	})
}
