package whycache

import (
	"context"
	"time"

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
	// LagSeconds is how long the state has been behind: the time since
	// LastApplied when LagRecords > 0, else 0.
	LagSeconds float64
	Commits    uint64 // write transactions on the state file since it was created
	Recoveries uint64 // dead writers' transactions repaired since it was created
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
		})
		return err
	})
	if err != nil || ctx == nil {
		return st, err
	}
	latest, err := c.store.LatestUpdateID(ctx)
	if err != nil {
		return st, withContext("stats", err)
	}
	st.LatestID = latest
	if latest > st.UpdateID {
		st.LagRecords = latest - st.UpdateID
		if !st.LastApplied.IsZero() {
			st.LagSeconds = time.Since(st.LastApplied).Seconds()
		}
	}
	return st, nil
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
