package whycache

import (
	"context"
)

// Notifier carries the news that the log has new records, from the machine
// that committed them to the followers of other machines, so that they
// poll at once instead of at their next interval: writes become visible
// fleet-wide in milliseconds without polling faster.
//
// It is an optimisation only. A lost, late, duplicated or forged
// notification costs a poll or some latency, never correctness: followers
// still poll every FollowOptions.Interval, and apply only what the log
// holds. Package redisnotify implements it on Redis pub/sub.
type Notifier interface {
	// Publish announces that the log holds records up to id. Set and the
	// other writes call it after a successful commit, with their context;
	// it should return quickly. Its error does not fail the write
	// (Instance.NotifyErrors counts them).
	Publish(ctx context.Context, id uint64) error

	// Subscribe returns a channel on which announced ids arrive until ctx
	// is done, when the channel is closed. Follow's leader subscribes once
	// and polls on every announcement of an id above its state's.
	// Implementations drop announcements a slow reader does not take
	// rather than block.
	Subscribe(ctx context.Context) (<-chan uint64, error)
}

// publish announces a commit through the instance's Notifier, if any.
func (c *Instance) publish(ctx context.Context, id uint64) {
	if c.opts.Notifier == nil {
		return
	}
	if err := c.opts.Notifier.Publish(ctx, id); err != nil {
		c.notifyErrors.Add(1)
	}
}

// NotifyErrors returns how many announcements of this instance's commits
// its Notifier failed to publish.
func (c *Instance) NotifyErrors() uint64 { return c.notifyErrors.Load() }
