package whycache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/prefixtree"
)

// pollPage bounds the records one Poll delivers.
const pollPage = 1024

// errPageFull stops a Poll whose records fill an apply batch; the caller
// applies them and polls on.
var errPageFull = errors.New("whycache: apply batch full")

// UpdateStats describes what an Update did.
type UpdateStats struct {
	// Applied is the number of log records applied.
	Applied int
	// Rebuilt, when not nil, says why the state was rebuilt from the whole
	// log and swapped in: it wraps ErrLogDiverged, ErrHistoryCompacted or
	// ErrLogMismatch (the latter only with RebuildAnyLog).
	Rebuilt error
	// Log is what the last poll of the log showed (its latest position and
	// times), for lag figures without asking the log again.
	Log LogView
}

// LogView is what one poll of the log showed, in one snapshot.
type LogView struct {
	// Latest is the log's latest position.
	Latest logstore.Position
	// LatestTime is when the latest commit was made (primary's clock),
	// Heartbeat when the primary last received a heartbeat, ReadTime the
	// clock of the server read; each zero when the store does not know.
	LatestTime, Heartbeat, ReadTime time.Time
	// HeldBack is the highest id the log holds above Latest that the poll
	// held back behind a hole (a Python whycache table, whose ids commit
	// out of order); 0 when none.
	HeldBack uint64
}

// viewOf returns the figures of a poll's result.
func viewOf(res logstore.PollResult) LogView {
	return LogView{Latest: res.Latest, LatestTime: res.LatestTime, Heartbeat: res.Heartbeat, ReadTime: res.ReadTime, HeldBack: res.HeldBack}
}

// Update applies every log record newer than the state's position, in id
// order, and then UpdateID is the latest id of the log. It is safe to call
// from many goroutines and processes at once: each record is applied once,
// in a batch that readers see whole.
//
// Before it applies anything it checks that the log is still the one the
// state follows and still holds the history the state applied (the
// position's commit nonce, logstore.Verdict). When it is not, the state is
// rebuilt from the whole log beside the old one and swapped in atomically,
// as Options.Rebuild allows; otherwise Update fails with ErrRebuildNeeded
// wrapping the cause (ErrLogDiverged, ErrHistoryCompacted, ErrLogMismatch)
// and leaves the state as it was. A state file that was removed is put
// back from this process's mapping first.
//
// Errors: the store's errors (the state keeps what was applied), and
// ErrCorrupt for a record that fails validation (the state keeps the
// records before it; UpdateID does not move).
func (c *Instance) Update(ctx context.Context) error {
	_, err := c.UpdateStats(ctx)
	return err
}

// UpdateStats is Update returning what it did.
func (c *Instance) UpdateStats(ctx context.Context) (UpdateStats, error) {
	if err := c.lockUpdate(ctx); err != nil {
		return UpdateStats{}, err
	}
	defer c.updateMu.Unlock()
	return c.updateLocked(ctx, false)
}

// lockUpdate takes updateMu, giving up when ctx ends first.
func (c *Instance) lockUpdate(ctx context.Context) error {
	if err := c.updateMu.Lock(ctx); err != nil {
		return fmt.Errorf("whycache: wait for this process's other update: %w", err)
	}
	return nil
}

// rebuildError says that the state cannot follow the log by tailing it.
type rebuildError struct {
	cause error // ErrLogDiverged, ErrHistoryCompacted or ErrLogMismatch, wrapped with details
	// owed is set when the log may not show the cause again (a row the
	// store found late in a hole it passed: logstore.PollResult.Detail),
	// so the state must remember it (markMustBuild). The other causes are
	// found again by every poll, and may go away (a store address
	// corrected back to the state's log).
	owed bool
}

func (e *rebuildError) Error() string { return e.cause.Error() }
func (e *rebuildError) Unwrap() error { return e.cause }

// updateLocked runs Update with updateMu held. primary makes the polls read
// from the primary of a replicated store.
func (c *Instance) updateLocked(ctx context.Context, primary bool) (UpdateStats, error) {
	var st UpdateStats
	if err := c.restoreRemovedState(ctx); err != nil {
		return st, err
	}
	for attempt := 0; ; attempt++ {
		t, err := c.tree()
		if err != nil {
			return st, err
		}
		n, err := c.tail(ctx, t, primary)
		st.Applied += n
		st.Log = c.lastView()
		var rb *rebuildError
		switch {
		case errors.As(err, &rb):
			if rb.owed {
				if err := markMustBuild(ctx, t, causeOf(rb.cause)); err != nil {
					return st, wrapStateErr(err)
				}
			}
			if !c.opts.Rebuild.allows(rb.cause) {
				return st, fmt.Errorf("%w: %w", ErrRebuildNeeded, bare(rb.cause))
			}
			n, err := c.rebuildLocked(ctx, rb.cause)
			st.Applied += n
			st.Log = c.lastView()
			if err == nil {
				st.Rebuilt = rb.cause
			}
			return st, err
		case (prefixtree.IsRetired(err) || errors.Is(err, errStateMoved)) && attempt < 100:
			// Swapped under us (a snapshot or rebuild elsewhere): go on
			// from the new state's position.
			if _, err := c.openTree(t); err != nil {
				return st, err
			}
			continue
		}
		return st, wrapStateErr(err)
	}
}

// tail checks the state t against the log and applies the records after
// its position, polling until the log has nothing newer; the state then
// claims the latest id of the last poll's snapshot and is filled. It
// returns *rebuildError when the state cannot follow the log by tailing.
func (c *Instance) tail(ctx context.Context, t *prefixtree.Tree, primary bool) (int, error) {
	m, err := readState(t)
	if err != nil {
		return 0, err
	}
	if m.mustBuild != rebuiltUnknown {
		return 0, &rebuildError{cause: m.mustBuild.err(), owed: true}
	}
	ap := applier{ctx: ctx, t: t, logID: m.logID}
	pos := m.pos
	data := hasData(t, m)
	horizon := uint64(0) // the horizon the records applied so far were read under
	for {
		res, err := c.poll(ctx, pos, primary, &ap)
		if err != nil {
			return ap.applied, err
		}
		if err := judge(res.PollResult, pos, ap.logID, data, &horizon); err != nil {
			if !primary && res.Verdict != logstore.VerdictMatch && res.Verdict != logstore.VerdictNone {
				// A replica may lag behind what this machine applied from
				// the primary: ask the primary before concluding.
				primary = true
				ap.pending, ap.items, ap.bytes = ap.pending[:0], 0, 0
				continue
			}
			return ap.applied, err
		}
		if !data {
			ap.logID = res.Info.ID
		}
		if res.stopped != nil && !errors.Is(res.stopped, errPageFull) {
			// A record failed validation: keep the complete commits
			// before it.
			if ferr := ap.flushComplete(); ferr != nil {
				return ap.applied, errors.Join(res.stopped, ferr)
			}
			return ap.applied, res.stopped
		}
		if res.stopped != nil || res.More {
			// The last commit read may go on in the next poll: apply the
			// complete ones and keep its records pending.
			if err := ap.flushComplete(); err != nil {
				return ap.applied, err
			}
			pos, data = res.Next, true
			continue
		}
		c.noteView(viewOf(res.PollResult))
		latest := res.Latest
		return ap.applied, ap.flush(&latest, true)
	}
}

// pollResult is a Poll's result, and the callback's error that stopped
// it, if any (the result is then valid up to Next).
type pollResult struct {
	logstore.PollResult
	stopped error
}

// poll polls the store once from pos, queueing the records in ap until the
// batch is full. An error means the store failed: nothing it delivered may
// be applied.
func (c *Instance) poll(ctx context.Context, pos logstore.Position, primary bool, ap *applier) (pollResult, error) {
	var stopped error
	res, err := c.store.Poll(ctx, logstore.PollRequest{After: pos, Max: pollPage, Primary: primary}, func(e logstore.Entry) error {
		// A full batch ends before the next commit (or, for a giant
		// commit, once it holds applyMaxBytes): e is not taken then.
		if (ap.full() && ap.startsCommit(e)) || ap.overfull() {
			stopped = errPageFull
			return stopped
		}
		if _, err := ap.add(e); err != nil {
			stopped = err
		}
		return stopped
	})
	if err != nil && (stopped == nil || !errors.Is(err, stopped)) {
		ap.pending, ap.items, ap.bytes = ap.pending[:0], 0, 0
		return pollResult{}, withContext("read log", wrapStateErr(err))
	}
	return pollResult{PollResult: res, stopped: stopped}, nil
}

// judge decides whether a state at pos that follows the log logID (and
// holds data when data is set) may apply what a poll delivered. horizon
// is the highest horizon seen by the earlier polls of this catch-up; it
// is updated.
func judge(res logstore.PollResult, pos logstore.Position, logID logstore.LogID, data bool, horizon *uint64) error {
	in := res.Info
	switch {
	case data && in.ID != logID:
		return &rebuildError{cause: fmt.Errorf("%w: the state follows log %x, the store holds log %x", ErrLogMismatch, logID[:], in.ID[:])}
	case data && in.Horizon > pos.ID && in.Horizon > *horizon:
		return &rebuildError{cause: fmt.Errorf("%w: the state is at id %d, the log's compaction horizon at %d", ErrHistoryCompacted, pos.ID, in.Horizon)}
	}
	*horizon = max(*horizon, in.Horizon)
	switch res.Verdict {
	case logstore.VerdictNone, logstore.VerdictMatch:
		return nil
	case logstore.VerdictAhead:
		return &rebuildError{cause: fmt.Errorf("%w: the state applied records up to id %d, the log ends at %d", ErrLogDiverged, pos.ID, res.Latest.ID)}
	case logstore.VerdictMismatch:
		if res.Detail != "" { // a row found late in a hole the store passed
			return &rebuildError{cause: fmt.Errorf("%w: %s", ErrLogDiverged, res.Detail), owed: true}
		}
		return &rebuildError{cause: fmt.Errorf("%w: record %d the state applied (commit %016x) is not the log's record %d", ErrLogDiverged, pos.ID, pos.Nonce, pos.ID)}
	}
	return &rebuildError{cause: fmt.Errorf("%w: the log keeps no trace of the commit of record %d the state applied", ErrLogDiverged, pos.ID)}
}

// noteView remembers what the last complete poll of the log showed.
func (c *Instance) noteView(v LogView) {
	c.mu.Lock()
	c.view = v
	c.mu.Unlock()
}

// lastView returns what the last complete poll of the log showed.
func (c *Instance) lastView() LogView {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.view
}
