package whycache

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/whycache/whycache/logstore"
)

// SetWithTTL is Set of an item that expires ttl from now, by this
// machine's clock: the record carries the absolute expiry time, and from
// that time on, by the clock of each reading machine, Get, AppendGet,
// GetWithExpiry, iteration and snapshots see no item for key. An expired
// item still occupies the state (and counts in Stats.Keys) until it is
// overwritten, deleted, or dropped by RewriteHistory and a rebuild. A ttl
// of zero or less fails with an error wrapping ErrBadTTL and commits
// nothing; other errors are those of Set.
func (c *Instance) SetWithTTL(ctx context.Context, key, value []byte, ttl time.Duration) (uint64, error) {
	exp, err := ttlExpiry(ttl)
	if err != nil {
		return 0, err
	}
	return c.commitItems(ctx, []logstore.Item{{Key: key, Value: value, Expires: exp}})
}

// GetWithExpiry is Get also returning the item's expiry time; the zero
// time means it never expires. It returns ErrNotFound for a missing or
// expired key.
func (c *Instance) GetWithExpiry(key []byte) (value []byte, expiresAt time.Time, err error) {
	v, exp, err := c.appendGetExpiry(nil, key)
	if err != nil {
		return nil, time.Time{}, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, expiryTime(exp), nil
}

// ttlExpiry returns the expiry, in nanoseconds since the Unix epoch, of an
// item written now with ttl.
func ttlExpiry(ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("%w: ttl %v is not positive", ErrBadTTL, ttl)
	}
	return expiresNano(time.Now().Add(ttl))
}

// expiresNano converts an Item's ExpiresAt to the record's expiry: 0 for
// the zero time, else nanoseconds since the Unix epoch, which must be
// positive.
func expiresNano(at time.Time) (int64, error) {
	if at.IsZero() {
		return 0, nil
	}
	if !at.After(time.Unix(0, 0)) || at.After(time.Unix(0, math.MaxInt64)) {
		return 0, fmt.Errorf("%w: expiry %v is not between the Unix epoch and the year 2262", ErrBadTTL, at)
	}
	return at.UnixNano(), nil
}

// expiryTime converts a stored expiry to a time: the zero time for 0.
func expiryTime(exp int64) time.Time {
	if exp == 0 {
		return time.Time{}
	}
	return time.Unix(0, exp)
}
