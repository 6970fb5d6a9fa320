package main

import (
	"flag"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

func updateCommand() *command {
	return &command{
		name:    "update",
		args:    "",
		summary: "apply new log records to this machine's state",
		help: `Applies every log record newer than the state's update id, in id order, then
prints the update id before and after. A new state file is filled from the
whole log; a state left behind a history rewrite, or built from another log,
is rebuilt beside the old one and swapped in. Safe to run while other
processes read, write or update. For a daemon that keeps doing this, see
'whycache follow'.

Before applying anything it checks that the log still holds the history
the state applied. A log that went backwards (restored from a backup, a
failover to a lagging replica) is reported and the state rebuilt from the
log as it now is. A state built from another log (a typo in --store or
--table, a new table or directory) is never replaced by that log's content
unless --rebuild says so: update fails and leaves the state as it is.`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			rebuild := fs.Bool("rebuild", false, "replace a state built from another log with this log's content")
			return func(e *env, _ []string) error {
				e.rebuild = *rebuild
				return e.update()
			}
		},
	}
}

func (e *env) update() error {
	e.oneConn = true // a follower: one connection per server, closed when idle
	s, err := e.open()
	if err != nil {
		return err
	}
	defer s.close()
	before := s.inst.UpdateID()
	start := time.Now()
	up, err := e.catchUp(s)
	if err != nil {
		return wrap(err, "update from %s", s.describe())
	}
	if up.Rebuilt != nil {
		e.warnf("update: rebuilt the state %s from the whole log: %s", s.inst.StatePath(), oneLine(up.Rebuilt))
	}
	took := time.Since(start)
	st, err := s.inst.Stats(e.ctx)
	if err != nil {
		return wrap(err, "update")
	}
	if e.g.json {
		rebuilt := ""
		if up.Rebuilt != nil {
			rebuilt = oneLine(up.Rebuilt)
		}
		return writeJSON(e.stdout, struct {
			Before   uint64  `json:"update_id_before"`
			UpdateID uint64  `json:"update_id"`
			LatestID uint64  `json:"latest_id"`
			Keys     uint64  `json:"keys"`
			Applied  int     `json:"applied"`
			Rebuilt  string  `json:"rebuilt,omitempty"`
			Seconds  float64 `json:"seconds"`
		}{before, st.UpdateID, st.LatestID, st.Keys, up.Applied, rebuilt, took.Seconds()})
	}
	e.printf("update id %d -> %d (log latest %d), %d keys, in %s\n", before, st.UpdateID, st.LatestID, st.Keys, fmtDur(took))
	return nil
}

// updateThroughHoles runs Update. On a log whose ids commit out of order
// (--format python) Update stops below a hole that may still fill: it is
// run again every holeRetry while the state is below the latest id the log
// had at the start, for at most the store's HoleWait and a second, so a
// one-shot update passes holes that never fill as a follow daemon does
// over its polls.
func (e *env) updateThroughHoles(s *session) (whycache.UpdateStats, error) {
	tr := logstore.TraitsOf(s.store)
	var target uint64
	if tr.OutOfOrderIDs {
		target, _ = s.store.LatestUpdateID(e.ctx) // an error is Update's to report
	}
	deadline := time.Now().Add(tr.HoleWait + time.Second)
	var total whycache.UpdateStats
	for {
		up, err := s.inst.UpdateStats(e.ctx)
		total.Applied += up.Applied
		total.Log = up.Log
		if up.Rebuilt != nil {
			total.Rebuilt = up.Rebuilt
		}
		if err != nil || s.inst.UpdateID() >= target || time.Now().After(deadline) {
			return total, err
		}
		select {
		case <-e.ctx.Done():
			return total, e.ctx.Err()
		case <-time.After(holeRetry):
		}
	}
}

// holeRetry is how often updateThroughHoles runs Update again.
const holeRetry = 100 * time.Millisecond

// catchUp runs Update, drawing a progress line (records applied of those
// behind) while it runs.
func (e *env) catchUp(s *session) (whycache.UpdateStats, error) {
	p := e.newProgress("update", 0, false)
	if p == nil {
		return e.updateThroughHoles(s)
	}
	start := s.inst.UpdateID()
	if latest, err := s.store.LatestUpdateID(e.ctx); err == nil && latest > start {
		p.set(0, int64(latest-start))
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if st, err := s.inst.Stats(nil); err == nil && st.UpdateID >= start {
					p.set(int64(st.UpdateID-start), 0)
				}
			}
		}
	}()
	up, err := e.updateThroughHoles(s)
	close(stop)
	<-done
	p.finish()
	return up, err
}
