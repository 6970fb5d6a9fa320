// Package pace runs batches of work on a fixed schedule, for the load
// generators of the benchmark commands.
package pace

import "time"

// Schedule calls for one batch every interval from its start. A caller that
// falls behind gets its late batches back to back until it has caught up.
// A Schedule is not safe for concurrent use.
type Schedule struct {
	interval time.Duration
	start    time.Time
	next     time.Time
	timer    *time.Timer
}

// Every returns a schedule of batch batches per batch/rate seconds, that is
// rate items per second, starting now. Stop releases it.
func Every(rate, batch int) *Schedule {
	interval := time.Duration(float64(time.Second) * float64(batch) / float64(rate))
	now := time.Now()
	return &Schedule{interval: interval, start: now, next: now.Add(interval), timer: time.NewTimer(time.Hour)}
}

// Wait blocks until the next batch is due and reports true, or reports
// false as soon as stop is closed.
func (s *Schedule) Wait(stop <-chan struct{}) bool {
	if wait := time.Until(s.next); wait > 0 {
		s.timer.Reset(wait)
		select {
		case <-stop:
			return false
		case <-s.timer.C:
		}
	} else {
		select {
		case <-stop:
			return false
		default:
		}
	}
	s.next = s.next.Add(s.interval)
	return true
}

// Interval returns the time between two batches.
func (s *Schedule) Interval() time.Duration { return s.interval }

// Elapsed returns the time since the schedule started.
func (s *Schedule) Elapsed() time.Duration { return time.Since(s.start) }

// Stop releases the schedule's timer.
func (s *Schedule) Stop() { s.timer.Stop() }
