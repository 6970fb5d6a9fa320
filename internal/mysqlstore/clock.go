package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"
)

// serverClockTTL is how long a measured offset between this machine's
// clock and a server's is used before it is measured again. Clocks kept
// by NTP drift by far less than a millisecond a minute; a reader of a
// replica pays one small statement per TTL for it, and only while the log
// has heartbeats (see readTime).
const serverClockTTL = time.Minute

// serverClock is the offset of a server's clock from this machine's,
// and when it was measured.
type serverClock struct {
	offset time.Duration // server's clock minus this machine's
	at     time.Time     // this machine's clock at the measurement
}

// atomicClock holds a server's last measured clock offset; nil until the
// first measurement.
type atomicClock = atomic.Pointer[serverClock]

// clockOf returns where the offset of pool db's server is kept: the
// primary's or the read pool's.
func (s *Store) clockOf(db *sql.DB) *atomicClock {
	if db == s.db {
		return &s.primaryClock
	}
	return &s.readClock
}

// readTime returns PollResult.ReadTime for a poll of db that showed the
// given heartbeat (µs since 1970 UTC; 0 when nobody writes heartbeats):
// the server's clock now, as this machine's clock plus the server's
// offset.
//
// The Poll statement does not read the server's clock itself: a
// statement that calls UTC_TIMESTAMP is never answered from the query
// cache, and a fleet whose followers ask the same question of a replica
// is what that cache serves best. ReadTime matters only against a
// heartbeat (Stats' read lag), so the offset is measured (one SELECT of
// the server's clock, taken at the middle of its round trip) only for
// polls that show one, at most once per serverClockTTL; without a
// measurement the offset is 0. An error of that statement is returned
// without the package prefix (Poll adds it).
func (s *Store) readTime(ctx context.Context, db *sql.DB, heartbeatUS uint64) (time.Time, error) {
	c := s.clockOf(db)
	last := c.Load()
	if heartbeatUS == 0 || (last != nil && time.Since(last.at) < serverClockTTL) {
		if last == nil {
			return time.Now(), nil
		}
		return time.Now().Add(last.offset), nil
	}
	before := time.Now()
	var us uint64 // a text statement (no arguments): one request, nothing to prepare
	if err := db.QueryRowContext(ctx, s.q.serverClock).Scan(&us); err != nil {
		return time.Time{}, fmt.Errorf("read the server's clock: %w", err)
	}
	after := time.Now()
	mid := before.Add(after.Sub(before) / 2)
	offset := microTime(us).Sub(mid)
	c.Store(&serverClock{offset: offset, at: after})
	return time.Now().Add(offset), nil
}
