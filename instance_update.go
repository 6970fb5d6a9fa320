package whycache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// Apply batching: records are applied to the state in batches that readers
// see atomically; these bound how long readers wait for one batch.
const (
	applyBatchItems = 4096
	applyBatchBytes = 8 << 20
)

// logInfoCache holds the last Info read from the store.
type logInfoCache struct {
	mu   sync.Mutex // guards the following
	info logstore.Info
	ok   bool
}

// logInfo returns the store's Info, read once and refreshed by Update.
func (c *Instance) logInfo(ctx context.Context) (logstore.Info, error) {
	ic := &c.info
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.ok {
		return ic.info, nil
	}
	info, err := c.store.Info(ctx)
	if err != nil {
		return logstore.Info{}, fmt.Errorf("whycache: read log info: %w", err)
	}
	ic.info, ic.ok = info, true
	return info, nil
}

func (c *Instance) refreshLogInfo(ctx context.Context) (logstore.Info, error) {
	info, err := c.store.Info(ctx)
	if err != nil {
		return logstore.Info{}, fmt.Errorf("whycache: read log info: %w", err)
	}
	ic := &c.info
	ic.mu.Lock()
	ic.info, ic.ok = info, true
	ic.mu.Unlock()
	return info, nil
}

func stateLogID(t *prefixtree.Tree) logstore.LogID {
	var id logstore.LogID
	binary.LittleEndian.PutUint64(id[:8], t.Meta(metaLogID0))
	binary.LittleEndian.PutUint64(id[8:], t.Meta(metaLogID1))
	return id
}

func setStateLogID(b *prefixtree.Batch, id logstore.LogID) error {
	if err := b.SetMeta(metaLogID0, binary.LittleEndian.Uint64(id[:8])); err != nil {
		return err
	}
	return b.SetMeta(metaLogID1, binary.LittleEndian.Uint64(id[8:]))
}

// errRebuild asks Update to rebuild the state from the start of the log.
var errRebuild = errors.New("whycache: state must be rebuilt from the log")

// Update applies every log record newer than UpdateID, in id order, and
// then UpdateID equals the latest id it applied. It is safe to call from
// many goroutines and processes at once: each record is applied once, in a
// batch that readers see whole. A state built from another log (after
// DeleteAllHistory) or left behind a compaction horizon is rebuilt from the
// start of the log beside the old one and swapped in atomically.
//
// Errors: the store's errors (the state keeps what was applied), and
// ErrCorrupt for a record that fails validation (the state stays at the
// last good id).
func (c *Instance) Update(ctx context.Context) error {
	c.updateMu.Lock()
	defer c.updateMu.Unlock()
	_, err := c.updateLocked(ctx)
	return err
}

// updateLocked runs Update with updateMu held and returns the number of
// records applied.
func (c *Instance) updateLocked(ctx context.Context) (int, error) {
	info, err := c.refreshLogInfo(ctx)
	if err != nil {
		return 0, err
	}
	t, err := c.tree()
	if err != nil {
		return 0, err
	}
	start := t.Meta(metaUpdateID)
	hasData := t.Len() > 0 || t.Tombstones() > 0
	if stateLogID(t) != info.ID {
		if hasData || start != 0 {
			return c.rebuildLocked(ctx)
		}
		start = 0
	} else if hasData && start < info.Horizon {
		return c.rebuildLocked(ctx)
	}
	n, err := c.tail(ctx, t, start, info.ID)
	if errors.Is(err, errRebuild) {
		return c.rebuildLocked(ctx)
	}
	if prefixtree.IsRetired(err) {
		// Swapped under us (snapshot or rebuild elsewhere): go on from the
		// new state's position.
		if _, oerr := c.openTree(t); oerr != nil {
			return n, oerr
		}
		m, err := c.updateLocked(ctx)
		return n + m, err
	}
	return n, wrapStateErr(err)
}

// tail applies the records after start to t, in batches, and marks the
// state filled when it has caught up with the latest id.
func (c *Instance) tail(ctx context.Context, t *prefixtree.Tree, start uint64, logID logstore.LogID) (int, error) {
	latest, err := c.store.LatestUpdateID(ctx)
	if err != nil {
		return 0, fmt.Errorf("whycache: read latest id: %w", err)
	}
	hadData := t.Len() > 0 || t.Tombstones() > 0
	ap := applier{t: t, logID: logID}
	err = c.store.ReadUpdates(ctx, start+1, latest, ap.add)
	if err != nil {
		// Keep what was read completely: the state stays at the last good id.
		if ferr := ap.flush(0, false); ferr != nil {
			err = errors.Join(err, ferr)
		}
		if !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("whycache: read log: %w", err)
		}
		return ap.applied, err
	}
	// A compaction that removed delete markers after we started reading
	// raises the horizon first: then what we read may lack them.
	info, err := c.refreshLogInfo(ctx)
	if err != nil {
		return ap.applied, err
	}
	if info.ID != logID || (hadData && info.Horizon > start) {
		return ap.applied, errRebuild
	}
	return ap.applied, ap.flush(latest, true)
}

// warmItems brings the keys of records into the CPU cache before a batch
// writes them, so that readers wait less for the batch (Tree.Warm).
func warmItems(t *prefixtree.Tree, recs ...pendingRecord) {
	keys := make([][]byte, 0, 64)
	for _, r := range recs {
		for _, it := range r.items {
			keys = append(keys, it.Key)
		}
	}
	t.Warm(keys...)
}

// pendingRecord is a log record read but not yet applied.
type pendingRecord struct {
	id    uint64
	items []logstore.Item
}

// applier collects log records and applies them to a state in batches. No
// batch is open while the store is read, so readers never wait on I/O.
type applier struct {
	t       *prefixtree.Tree
	logID   logstore.LogID
	pending []pendingRecord
	items   int
	bytes   int
	applied int
	onBatch func(lastID uint64) // progress callback, may be nil
	noPurge bool                // keep tombstones (their ids are needed)
}

// add decodes a record (copying it) and applies the pending records when
// they fill a batch.
func (a *applier) add(id uint64, contents []byte) error {
	buf := append([]byte(nil), contents...)
	rec := pendingRecord{id: id}
	if err := logstore.DecodeRecord(buf, func(it logstore.Item) error {
		rec.items = append(rec.items, it)
		return nil
	}); err != nil {
		return fmt.Errorf("%w: record %d: %w", ErrCorrupt, id, err)
	}
	a.pending = append(a.pending, rec)
	a.items += len(rec.items)
	a.bytes += len(buf)
	if a.items >= applyBatchItems || a.bytes >= applyBatchBytes {
		return a.flush(0, false)
	}
	return nil
}

// flush applies the pending records in one batch and advances the state's
// update id to the last of them, or to through if higher (the ids between
// were compacted away). done marks the state filled.
func (a *applier) flush(through uint64, done bool) error {
	t := a.t
	if len(a.pending) == 0 && (through == 0 || t.Meta(metaUpdateID) >= through) && (!done || filled(t)) {
		return nil
	}
	warmItems(t, a.pending...)
	b, err := t.Begin()
	if err != nil {
		return err
	}
	cur := t.Meta(metaUpdateID)
	if stateLogID(t) != a.logID && cur == 0 && t.Len() == 0 {
		err = setStateLogID(b, a.logID)
	}
	id := cur
	for _, rec := range a.pending {
		if err != nil {
			break
		}
		if rec.id <= cur {
			continue // another process applied it since we read it
		}
		if err = b.Reserve(len(rec.items)); err == nil {
			err = applyItems(b, rec.id, rec.items)
		}
		id = max(id, rec.id)
	}
	id = max(id, through)
	if err == nil {
		err = b.SetMeta(metaUpdateID, id)
	}
	if err == nil && len(a.pending) > 0 {
		err = b.SetMeta(metaAppliedAt, uint64(time.Now().UnixNano()))
	}
	if err == nil && done && !filled(t) {
		err = b.SetMeta(metaFilled, 1)
	}
	if err == nil && !a.noPurge && t.Tombstones() > 1024 && t.Tombstones() > t.Len()/8 {
		_, err = b.PurgeTombstones(id)
	}
	if err != nil {
		b.Rollback()
		return err
	}
	if err := b.Commit(); err != nil {
		return err
	}
	a.applied += len(a.pending)
	a.pending, a.items, a.bytes = a.pending[:0], 0, 0
	if a.onBatch != nil {
		a.onBatch(id)
	}
	return nil
}
