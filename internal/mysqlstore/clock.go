package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"
)

// serverClockTTL is how long a reading of a server's clock is carried
// forward before the clock is read again. Clocks kept by NTP drift by far
// less than a millisecond a minute; a reader of a replica pays one small
// statement per TTL for it, and only while the log has heartbeats (see
// readTime).
const serverClockTTL = time.Minute

// serverClock is a reading of a server's clock: its time, and this
// machine's clock (with its monotonic reading) at that moment.
type serverClock struct {
	server time.Time // the server's clock
	at     time.Time // this machine's clock at the same moment, from time.Now (monotonic)
}

// now returns the server's clock now: the reading carried forward by the
// monotonic time elapsed since, so a step of this machine's wall clock
// does not move it.
func (c *serverClock) now() time.Time { return c.server.Add(time.Since(c.at)) }

// atomicClock holds a server's last clock reading; nil until the first.
type atomicClock = atomic.Pointer[serverClock]

// clockOf returns where the clock reading of pool db's server is kept:
// the primary's or the read pool's.
func (s *Store) clockOf(db *sql.DB) *atomicClock {
	if db == s.db {
		return &s.primaryClock
	}
	return &s.readClock
}

// readTime returns PollResult.ReadTime for a poll of db that showed the
// given heartbeat (µs since 1970 UTC; 0 when nobody writes heartbeats):
// the server's clock now, as its last reading plus the time elapsed
// since on this machine's monotonic clock.
//
// The Poll statement does not read the server's clock itself: a
// statement that calls UTC_TIMESTAMP is never answered from the query
// cache, and a fleet whose followers ask the same question of a replica
// is what that cache serves best. ReadTime matters only against a
// heartbeat (Stats' read lag), so the clock is read (one SELECT, taken
// as the server's time at the middle of its round trip) only by polls
// that show one, at most once per serverClockTTL; before any reading
// ReadTime is this machine's clock. An error of that statement is
// returned without the package prefix (Poll adds it).
func (s *Store) readTime(ctx context.Context, db *sql.DB, heartbeatUS uint64) (time.Time, error) {
	c := s.clockOf(db)
	last := c.Load()
	if heartbeatUS == 0 || (last != nil && time.Since(last.at) < serverClockTTL) {
		if last == nil {
			return time.Now(), nil
		}
		return last.now(), nil
	}
	before := time.Now()
	var us uint64 // a text statement (no arguments): one request, nothing to prepare
	if err := db.QueryRowContext(ctx, s.q.serverClock).Scan(&us); err != nil {
		return time.Time{}, fmt.Errorf("read the server's clock: %w", err)
	}
	after := time.Now()
	server := microTime(us)
	if server.IsZero() {
		return time.Time{}, fmt.Errorf("read the server's clock: %d µs since 1970 is not a time", us)
	}
	reading := &serverClock{server: server, at: before.Add(after.Sub(before) / 2)}
	c.Store(reading)
	return reading.now(), nil
}
