package whycache

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// The state's meta words (prefixtree.Tree.Meta) say what the state holds of
// which log. They are read and written only here: outside a batch always
// through the seqlock (readState, readStateWith), inside a batch directly
// (stateMetaLocked), and stateMeta.writeTo writes the ones that changed in
// a batch; filled is the one unchecked read, a hint for Get's fast path.
const (
	metaUpdateID  = 0  // the id the state claims (see stateMeta.updateID)
	metaFilled    = 1  // 1 once an Update or LoadSnapshot filled the state
	metaLogID0    = 2  // log identity, first 8 bytes
	metaLogID1    = 3  // log identity, last 8 bytes
	metaAppliedAt = 4  // unix nanoseconds of the last batch that applied records from the log
	metaPosID     = 5  // position of the last record applied: id
	metaPosNonce  = 6  // position of the last record applied: its commit's nonce
	metaRebuilds  = 7  // rebuilds from the whole log since the state file was created, carried from state to state
	metaRebuiltAt = 8  // unix nanoseconds of the last rebuild (0: never)
	metaRebuildBy = 9  // why the last rebuild was made (rebuildCause)
	metaMustBuild = 10 // a rebuild is owed (rebuildCause; 0: none): set when an Update finds the state cannot follow the log, before it rebuilds
)

// rebuildCause says why a state was rebuilt from the whole log (the meta
// word metaRebuildBy): which check the state failed against the log.
type rebuildCause uint64

const (
	rebuiltUnknown     rebuildCause = iota // none recorded
	rebuiltDiverged                        // ErrLogDiverged: the log lost or replaced records the state applied
	rebuiltCompacted                       // ErrHistoryCompacted: the log's horizon passed the state's position
	rebuiltLogMismatch                     // ErrLogMismatch: the store holds another log (RebuildAnyLog)
)

// err returns an error for a rebuild owed for cause c that an earlier
// Update found (metaMustBuild), wrapping c's sentinel.
func (c rebuildCause) err() error {
	sentinel := ErrLogDiverged
	switch c {
	case rebuiltCompacted:
		sentinel = ErrHistoryCompacted
	case rebuiltLogMismatch:
		sentinel = ErrLogMismatch
	}
	return fmt.Errorf("%w: an earlier Update found that the state can no longer follow the log (%s) and its rebuild did not finish", sentinel, c)
}

// causeOf returns the rebuildCause of a rebuild's cause error.
func causeOf(err error) rebuildCause {
	switch {
	case errors.Is(err, ErrLogDiverged):
		return rebuiltDiverged
	case errors.Is(err, ErrHistoryCompacted):
		return rebuiltCompacted
	case errors.Is(err, ErrLogMismatch):
		return rebuiltLogMismatch
	}
	return rebuiltUnknown
}

// String names the cause as Stats.LastRebuildCause does.
func (c rebuildCause) String() string {
	switch c {
	case rebuiltDiverged:
		return "log diverged"
	case rebuiltCompacted:
		return "history compacted"
	case rebuiltLogMismatch:
		return "log mismatch"
	}
	return ""
}

// stateMeta is what the state knows of the log.
//
// Invariants (checked by checkMeta):
//   - updateID <= pos.ID. updateID is the id the state claims: it holds
//     every record up to updateID at its latest version, as one consistent
//     snapshot of the log showed them. pos is the position of the last
//     record applied (its id and its commit's nonce); it runs ahead of
//     updateID only while a catch-up that spans several polls is under way
//     or was interrupted. The next Update checks pos against the log
//     (logstore.Verdict) before it applies anything newer.
//   - No entry of the state carries a record id above pos.ID: records are
//     applied only in id order, from the log or from this machine's own
//     commit when it directly follows pos (Instance.applyCommitted).
//   - logID is zero only while the state holds nothing.
//   - rebuilds is 0 with rebuiltAt 0 and rebuildBy rebuiltUnknown (never
//     rebuilt), or above 0 with both set, rebuildBy a known cause.
//   - mustBuild is rebuiltUnknown or a known cause.
//
// A state file written before positions existed has pos zero and updateID
// set; it reads as pos = (updateID, nonce 0), checked by id only once.
type stateMeta struct {
	updateID  uint64
	pos       logstore.Position
	logID     logstore.LogID
	filled    bool
	appliedAt uint64

	// The state's record of rebuilds (written only by rebuildLocked, onto
	// the new state it installs): how many, the last one's time and cause.
	rebuilds  uint64
	rebuiltAt uint64
	rebuildBy rebuildCause

	// mustBuild is the cause of a rebuild owed (rebuiltUnknown: none):
	// the state, not only the process that found it, remembers that it
	// lacks what the log holds until a rebuild replaces it (markMustBuild).
	mustBuild rebuildCause
}

// stateMetaLocked reads the meta words directly. The caller holds the
// state's writer lock: inside a batch of t, or a transaction of its file.
func stateMetaLocked(t *prefixtree.Tree) stateMeta {
	m := stateMeta{
		updateID:  t.Meta(metaUpdateID),
		pos:       logstore.Position{ID: t.Meta(metaPosID), Nonce: t.Meta(metaPosNonce)},
		filled:    t.Meta(metaFilled) != 0,
		appliedAt: t.Meta(metaAppliedAt),
		rebuilds:  t.Meta(metaRebuilds),
		rebuiltAt: t.Meta(metaRebuiltAt),
		rebuildBy: rebuildCause(t.Meta(metaRebuildBy)),
		mustBuild: rebuildCause(t.Meta(metaMustBuild)),
	}
	binary.LittleEndian.PutUint64(m.logID[:8], t.Meta(metaLogID0))
	binary.LittleEndian.PutUint64(m.logID[8:], t.Meta(metaLogID1))
	if m.pos.ID < m.updateID {
		m.pos = logstore.Position{ID: m.updateID}
	}
	return m
}

// readState reads the meta words as of the last committed batch (a batch
// writes them in place before it commits and may still roll back, so this
// waits for a batch in progress as Get does).
func readState(t *prefixtree.Tree) (stateMeta, error) { return readStateWith(t, nil) }

// readStateWith is readState that also calls also, when not nil, with the
// meta words inside the same seqlock read, so that what also reads of the
// state (its counters) belongs to the same committed batch. also may run
// more than once (a batch raced the read); only its last run counts, and
// it must only read.
func readStateWith(t *prefixtree.Tree, also func(m stateMeta)) (stateMeta, error) {
	f := t.File()
	for {
		seq, err := f.ReadBegin()
		if err != nil {
			return stateMeta{}, err
		}
		m := stateMetaLocked(t)
		if also != nil {
			also(m)
		}
		if f.ReadValid(seq) {
			return m, nil
		}
	}
}

// writeTo writes the words of m that differ from old (the meta words as the
// batch found them) into b.
func (m stateMeta) writeTo(b *prefixtree.Batch, old stateMeta) error {
	set := func(i int, v, was uint64) error {
		if v == was {
			return nil
		}
		return b.SetMeta(i, v)
	}
	bool64 := func(v bool) uint64 {
		if v {
			return 1
		}
		return 0
	}
	oldID0, oldID1 := binary.LittleEndian.Uint64(old.logID[:8]), binary.LittleEndian.Uint64(old.logID[8:])
	for _, w := range []struct {
		i      int
		v, was uint64
	}{
		{i: metaUpdateID, v: m.updateID, was: old.updateID},
		{i: metaPosID, v: m.pos.ID, was: old.pos.ID},
		{i: metaPosNonce, v: m.pos.Nonce, was: old.pos.Nonce},
		{i: metaFilled, v: bool64(m.filled), was: bool64(old.filled)},
		{i: metaLogID0, v: binary.LittleEndian.Uint64(m.logID[:8]), was: oldID0},
		{i: metaLogID1, v: binary.LittleEndian.Uint64(m.logID[8:]), was: oldID1},
		{i: metaAppliedAt, v: m.appliedAt, was: old.appliedAt},
		{i: metaRebuilds, v: m.rebuilds, was: old.rebuilds},
		{i: metaRebuiltAt, v: m.rebuiltAt, was: old.rebuiltAt},
		{i: metaRebuildBy, v: uint64(m.rebuildBy), was: uint64(old.rebuildBy)},
		{i: metaMustBuild, v: uint64(m.mustBuild), was: uint64(old.mustBuild)},
	} {
		if err := set(w.i, w.v, w.was); err != nil {
			return err
		}
	}
	return nil
}

// hasData reports whether the state holds anything applied from a log.
func hasData(t *prefixtree.Tree, m stateMeta) bool {
	return t.Len() > 0 || t.Tombstones() > 0 || m.pos.ID > 0 || m.filled
}

// checkMeta verifies the invariants of the meta words against the state's
// entries (every one is read): errors wrap ErrCorrupt.
func checkMeta(t *prefixtree.Tree) error {
	var m stateMeta
	var rawPos uint64
	err := withReadLock(t, func() {
		m = stateMetaLocked(t)
		rawPos = t.Meta(metaPosID)
	})
	if err != nil {
		return err
	}
	switch {
	case rawPos != 0 && rawPos < m.updateID:
		return fmt.Errorf("%w: state claims update id %d beyond its applied position %d", ErrCorrupt, m.updateID, rawPos)
	case m.logID == (logstore.LogID{}) && (t.Len() > 0 || m.filled):
		return fmt.Errorf("%w: state holds data but no log identity", ErrCorrupt)
	case (m.rebuilds == 0) != (m.rebuiltAt == 0) || (m.rebuilds == 0) != (m.rebuildBy == rebuiltUnknown) || m.rebuildBy > rebuiltLogMismatch:
		return fmt.Errorf("%w: state's record of rebuilds is inconsistent: %d rebuilds, the last at %d ns, cause %d", ErrCorrupt, m.rebuilds, m.rebuiltAt, m.rebuildBy)
	case m.mustBuild > rebuiltLogMismatch:
		return fmt.Errorf("%w: state owes a rebuild of unknown cause %d", ErrCorrupt, m.mustBuild)
	}
	cur := t.Cursor()
	for cur.Next() {
		if id := cur.ID(); id > m.pos.ID {
			return fmt.Errorf("%w: key %.40q carries record id %d above the state's position %d", ErrCorrupt, cur.Key(), id, m.pos.ID)
		}
	}
	return wrapStateErr(cur.Err())
}

// withReadLock runs fn with the state's writer lock held, so that the
// words it reads are those of the last committed batch.
func withReadLock(t *prefixtree.Tree, fn func()) error {
	b, err := t.Begin()
	if err != nil {
		return err
	}
	fn()
	return b.Rollback()
}

// filled reports whether the state was filled by an Update or snapshot,
// reading the word without the seqlock: a hint for Get's fast path, which
// validates its read anyway.
func filled(t *prefixtree.Tree) bool { return t.Meta(metaFilled) != 0 }

// holds reports whether a state with meta m already is what a flush with
// nothing pending would make of it: following log logID, at position claim
// with an update id of at least claim.ID, and filled if done asks for it.
func (m stateMeta) holds(logID logstore.LogID, claim logstore.Position, done bool) bool {
	return m.logID == logID && m.pos == claim && m.updateID >= claim.ID && (m.filled || !done)
}
