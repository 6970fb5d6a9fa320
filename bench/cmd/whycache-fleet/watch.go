package main

import (
	"slices"
	"sort"
	"time"
)

// transition is the moment the watcher saw a state's update id change,
// and when the state says it applied its latest records.
type transition struct {
	id      uint64
	at      time.Time
	applied time.Time // the state's LastApplied with id (zero if unknown): when its follower committed the batch that reached id
}

// watcher scans every follower's state (mapped read-only in this process)
// in one goroutine, every tick, and notes when each state's UpdateID
// changes. A scan of N states is N seqlock reads of shared memory: no
// system call, no lock the followers take.
type watcher struct {
	fleet []*follower
	tick  time.Duration
	stop  chan struct{}
	done  chan struct{}

	// Owned by the goroutine until done is closed.
	seen    [][]transition // per follower, ids ascending
	scans   int
	maxScan time.Duration
	gaps    []time.Duration // between the starts of consecutive scans
}

// startWatcher starts scanning fleet every tick.
func startWatcher(fleet []*follower, tick time.Duration) *watcher {
	w := &watcher{fleet: fleet, tick: tick, stop: make(chan struct{}), done: make(chan struct{}), seen: make([][]transition, len(fleet))}
	go w.run()
	return w
}

func (w *watcher) run() {
	defer close(w.done)
	last := make([]uint64, len(w.fleet))
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var prev time.Time
	for {
		start := time.Now()
		if !prev.IsZero() {
			w.gaps = append(w.gaps, start.Sub(prev))
		}
		prev = start
		w.scan(last)
		w.scans++
		w.maxScan = max(w.maxScan, time.Since(start))
		select {
		case <-w.stop:
			// finish may follow a convergence seen by another reader
			// within the last tick: note what the fleet holds now.
			w.scan(last)
			return
		case <-t.C:
		}
	}
}

// scan notes every follower whose update id changed since last, with
// the time its state says it applied the records (read with the id, in
// one consistent read of the state, only on a change).
func (w *watcher) scan(last []uint64) {
	for i, f := range w.fleet {
		if id := f.inst.UpdateID(); id != last[i] {
			now := time.Now()
			tr := transition{id: id, at: now}
			if st, err := f.inst.Stats(nil); err == nil && st.UpdateID >= id {
				tr.id, tr.applied = st.UpdateID, st.LastApplied
			}
			last[i] = tr.id
			w.seen[i] = append(w.seen[i], tr)
		}
	}
}

// finish stops the watcher and waits for its goroutine.
func (w *watcher) finish() {
	close(w.stop)
	<-w.done
}

// propagation is the outcome of matching writes with what the followers
// were seen to hold.
type propagation struct {
	delays      []time.Duration // per (write, follower) seen, sorted
	applied     []time.Duration // the same pairs by the state's apply time (where known), sorted
	missing     int             // (write, follower) pairs never seen
	early       int             // seen before Set returned (counted as 0)
	perFollower []int           // writes seen, per follower
}

// match computes, for every measured write and every follower, the time
// from Set returning until the follower's update id was first seen at or
// past the write's id, and until the state's apply time noted then (the
// batch that reached that id: a write applied by an earlier batch between
// two scans gets the later time, so these are upper bounds too, without
// the watcher's own delay). Call after finish.
func (w *watcher) match(writes []write) propagation {
	p := propagation{perFollower: make([]int, len(w.fleet))}
	for fi, seen := range w.seen {
		for _, wr := range writes {
			if !wr.measured {
				continue
			}
			// The first transition to an id at or past the write's; ids
			// only grow (a rebuild from the log would only raise them too).
			k := sort.Search(len(seen), func(j int) bool { return seen[j].id >= wr.id })
			if k == len(seen) {
				p.missing++
				continue
			}
			d := seen[k].at.Sub(wr.returned)
			if d < 0 {
				p.early++
				d = 0
			}
			p.delays = append(p.delays, d)
			if a := seen[k].applied; !a.IsZero() {
				p.applied = append(p.applied, max(a.Sub(wr.returned), 0))
			}
			p.perFollower[fi]++
		}
	}
	slices.Sort(p.delays)
	slices.Sort(p.applied)
	return p
}

// pollGaps returns, sorted, the times between consecutive update id
// changes of each follower seen between from and to. While the writer
// commits faster than the followers poll, every poll finds new records,
// so these are the followers' poll intervals as they happened (plus the
// watcher's tick): gaps well above the interval mean late polls.
func (w *watcher) pollGaps(from, to time.Time) []time.Duration {
	var gaps []time.Duration
	for _, seen := range w.seen {
		for i := 1; i < len(seen); i++ {
			if seen[i-1].at.After(from) && seen[i].at.Before(to) {
				gaps = append(gaps, seen[i].at.Sub(seen[i-1].at))
			}
		}
	}
	slices.Sort(gaps)
	return gaps
}

// percentile returns the q-quantile (0..1) of sorted by nearest rank, or 0.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
