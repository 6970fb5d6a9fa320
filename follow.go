package whycache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/whycache/whycache/logstore"
)

// Defaults of FollowOptions (used where a field is zero).
const (
	DefaultFollowInterval   = time.Second
	DefaultFollowMaxBackoff = 5 * time.Second
)

// FollowOptions configure Follow. They are read once, when Follow starts.
type FollowOptions struct {
	// Interval is the time between two polls of the leader, and between
	// two attempts of a standby to take the leader lock; 0 means
	// DefaultFollowInterval.
	Interval time.Duration

	// MaxBackoff caps the wait after failed polls; 0 means
	// DefaultFollowMaxBackoff. A value below Interval is raised to it.
	MaxBackoff time.Duration

	// Logger receives the follower's structured logs; nil means
	// slog.Default().
	Logger *slog.Logger

	// OnPoll, if set, is called after every poll of the leader and every
	// failed lock attempt of a standby, from the goroutine running Follow.
	// err is the poll's error (nil for a standby). It must not call Follow.
	OnPoll func(st FollowStats, err error)

	// Heartbeat makes the leader write a heartbeat to the log's primary
	// before every poll (the store must implement logstore.Heartbeater),
	// so that every machine reading a replica can tell how far it lags
	// (Stats.ReadLagSeconds). One follower of the fleet is enough; each
	// heartbeat is one small write.
	Heartbeat bool
}

// FollowStats describes one poll of Follow, as passed to OnPoll.
type FollowStats struct {
	// Stats is the state after the poll. The leader asks the store for the
	// latest id, so LatestID and the lag fields are set; a standby reads
	// only the shared state (which the leader keeps up to date), so they
	// are zero. After a failed poll the leader reports the local state too.
	Stats

	// Leader is true in the process that holds the leader lock and polls.
	Leader bool

	// Applied is the number of log records this poll applied.
	Applied uint64

	// Failures is the number of consecutive failed polls, 0 after a
	// successful one.
	Failures int

	// Wait is the time until the next poll (or lock attempt).
	Wait time.Duration
}

// withDefaults fills the zero fields of o.
func (o FollowOptions) withDefaults() FollowOptions {
	if o.Interval <= 0 {
		o.Interval = DefaultFollowInterval
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultFollowMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.Interval)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Follow keeps the state in step with the log until ctx is done: a daemon's
// main loop. Only one follower per state file polls the log, however many
// processes (or goroutines) run Follow on it: they compete for the leader
// lock, an flock on StatePath()+".follow" that the kernel releases when its
// holder exits or dies. The leader calls Update every Interval — its first
// poll at a random point of the first interval and each wait ±10%, so that
// a fleet restarted together does not poll in lockstep — and at once when
// the instance's Notifier announces records it lacks; after a failed
// Update it waits an exponential backoff with full jitter (a random time up
// to Interval·2^failures, capped at MaxBackoff) and tries again. A poll
// costs the log one read (logstore.Store.Poll) and, with Heartbeat, one
// write.
//
// The others are standbys: they try to take the lock every Interval, so one
// of them takes over within one Interval of the leader's exit, and all the
// while they read the state the leader keeps current.
//
// Follow returns ctx's error when ctx is done, releasing the lock, or an
// error wrapping the cause when the lock file cannot be opened or locked.
// Poll errors do not end it; they are logged and passed to OnPoll.
func (c *Instance) Follow(ctx context.Context, opts FollowOptions) error {
	opts = opts.withDefaults()
	log := opts.Logger.With("state", c.path)
	if _, ok := c.store.(logstore.Heartbeater); opts.Heartbeat && !ok {
		return fmt.Errorf("whycache: follow: the store (%T) keeps no heartbeats", c.store)
	}
	lock, err := c.openFollowLock()
	if err != nil {
		return err
	}
	defer lock.close()
	announced := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		held, err := lock.tryLock()
		if err != nil {
			return err
		}
		if held {
			log.Info("whycache: follow: leader: polling the log", "interval", opts.Interval, "lock", lock.path)
			return c.lead(ctx, opts, log)
		}
		if !announced {
			log.Info("whycache: follow: standby: another follower holds the lock", "lock", lock.path, "retry", opts.Interval)
			announced = true
		}
		if opts.OnPoll != nil {
			st, err := c.Stats(nil)
			if err != nil {
				log.Warn("whycache: follow: standby: read state", "err", err)
			}
			opts.OnPoll(FollowStats{Stats: st, Wait: opts.Interval}, nil)
		}
		if !sleepCtx(ctx, opts.Interval) {
			return ctx.Err()
		}
	}
}

// lead is the leader's poll loop; it returns when ctx is done.
func (c *Instance) lead(ctx context.Context, opts FollowOptions, log *slog.Logger) error {
	var wake <-chan uint64
	if c.opts.Notifier != nil {
		ch, err := c.opts.Notifier.Subscribe(ctx)
		if err != nil {
			log.Warn("whycache: follow: notifications unavailable: polling every interval only", "err", err)
		} else {
			wake = ch
		}
	}
	// The first poll at a random point of the first interval.
	if !c.waitPoll(ctx, time.Duration(rand.Int64N(int64(opts.Interval))), wake) {
		return ctx.Err()
	}
	failures := 0
	for {
		if opts.Heartbeat {
			if err := c.store.(logstore.Heartbeater).Heartbeat(ctx); err != nil && ctx.Err() == nil {
				log.Warn("whycache: follow: heartbeat failed", "err", err)
			}
		}
		up, err := c.followPoll(ctx)
		applied := uint64(up.Applied)
		if up.Rebuilt != nil {
			log.Warn("whycache: follow: rebuilt the state from the whole log", "reason", up.Rebuilt, "records", up.Applied)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st, serr := c.Stats(nil)
		if err == nil {
			err = serr
		}
		if err == nil {
			st.applyView(up.Log) // the figures of the poll itself: no second read
		}
		wait := jittered(opts.Interval, rand.Int64N)
		switch {
		case err != nil:
			failures++
			wait = followBackoff(opts.Interval, opts.MaxBackoff, failures, rand.Int64N)
			log.Warn("whycache: follow: poll failed", "err", err, "failures", failures, "retry_in", wait)
		case failures > 0:
			log.Info("whycache: follow: poll succeeded again", "after_failures", failures, "update_id", st.UpdateID)
			failures = 0
		case applied > 0:
			log.Debug("whycache: follow: applied records", "records", applied, "update_id", st.UpdateID, "latest_id", st.LatestID)
		}
		if opts.OnPoll != nil {
			opts.OnPoll(FollowStats{Stats: st, Leader: true, Applied: applied, Failures: failures, Wait: wait}, err)
		}
		if failures > 0 {
			if !sleepCtx(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		if !c.waitPoll(ctx, wait, wake) {
			return ctx.Err()
		}
	}
}

// waitPoll waits d, or less when an announcement on wake names an id the
// state does not hold yet. It reports false when ctx is done first.
func (c *Instance) waitPoll(ctx context.Context, d time.Duration, wake <-chan uint64) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		case id, ok := <-wake:
			if !ok {
				wake = nil // the subscription ended: poll on the interval only
				continue
			}
			if id > c.UpdateID() {
				return true
			}
		}
	}
}

// jittered returns interval ±10%, at random (rnd(n) is in [0, n)).
func jittered(interval time.Duration, rnd func(n int64) int64) time.Duration {
	spread := int64(interval / 5)
	if spread <= 0 {
		return interval
	}
	return interval - interval/10 + time.Duration(rnd(spread+1))
}

// followPoll runs one Update and returns what it did.
func (c *Instance) followPoll(ctx context.Context) (UpdateStats, error) {
	st, err := c.UpdateStats(ctx)
	if err != nil && !errors.Is(err, ctx.Err()) {
		err = withContext("follow: update", err)
	}
	return st, err
}

// followBackoff returns the wait after the given number (>= 1) of
// consecutive failures: a uniformly random duration in [0, ceiling] ("full
// jitter"), where the ceiling is interval·2^failures capped at maxBackoff.
// rnd(n) returns a random int64 in [0, n).
func followBackoff(interval, maxBackoff time.Duration, failures int, rnd func(n int64) int64) time.Duration {
	ceiling := interval
	for i := 0; i < failures && ceiling < maxBackoff && ceiling <= math.MaxInt64/2; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxBackoff)
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(ceiling) + 1))
}

// sleepCtx waits d or until ctx is done; it reports whether the full
// wait elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
