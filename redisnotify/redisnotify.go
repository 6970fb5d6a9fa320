// Package redisnotify is a whycache.Notifier on Redis pub/sub: a machine
// that commits publishes the log's new latest id on a channel, and the
// follow daemons of every machine subscribed to it poll the log at once.
//
// Pub/sub delivers at most once and keeps nothing for a subscriber that is
// away, which suits a notifier: a lost announcement costs a follower one
// interval of latency, never a record (followers still poll every
// interval and apply only what the log holds). The Redis server needs no
// persistence.
//
//	n, err := redisnotify.New(redisnotify.Options{Addr: "10.0.0.5:6379", Channel: "whycache:app"})
//	cache, err := whycache.Open(store, whycache.Options{Name: "app", Notifier: n})
package redisnotify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure New.
type Options struct {
	// Addr is the Redis server, host:port (or a Unix socket path with
	// Network "unix").
	Addr    string
	Network string
	// Password and Username authenticate, when the server asks.
	Username, Password string
	// Channel is the pub/sub channel; one per log (every machine of a
	// fleet that shares a log uses the same). Empty means "whycache".
	Channel string
	// PublishTimeout bounds one Publish; 0 means 200 ms. A Set never waits
	// longer than this for its announcement.
	PublishTimeout time.Duration
}

// DefaultChannel is the channel when Options.Channel is empty.
const DefaultChannel = "whycache"

// Notifier announces commits on a Redis channel. It is safe for
// concurrent use. Close releases its connections.
type Notifier struct {
	client  *redis.Client
	channel string
	timeout time.Duration
}

// New returns a Notifier on the server opts names. It does not connect
// until first used.
func New(opts Options) (*Notifier, error) {
	if opts.Addr == "" {
		return nil, errors.New("redisnotify: no server address")
	}
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 200 * time.Millisecond
	}
	client := redis.NewClient(&redis.Options{
		Addr: opts.Addr, Network: opts.Network,
		Username: opts.Username, Password: opts.Password,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		PoolSize: 4,
	})
	return &Notifier{client: client, channel: opts.Channel, timeout: opts.PublishTimeout}, nil
}

// Publish announces that the log holds records up to id. It waits at most
// Options.PublishTimeout.
func (n *Notifier) Publish(ctx context.Context, id uint64) error {
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	if err := n.client.Publish(ctx, n.channel, strconv.FormatUint(id, 10)).Err(); err != nil {
		return fmt.Errorf("redisnotify: publish on %s: %w", n.channel, err)
	}
	return nil
}

// Subscribe returns a channel of announced ids, closed when ctx is done.
// It subscribes before it returns, so announcements made after it
// returned are delivered; a reader that does not keep up misses some (the
// newest is what matters). Lost connections are re-established by the
// client.
func (n *Notifier) Subscribe(ctx context.Context) (<-chan uint64, error) {
	sub := n.client.Subscribe(ctx, n.channel)
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		sub.Close()
		return nil, fmt.Errorf("redisnotify: subscribe to %s: %w", n.channel, err)
	}
	out := make(chan uint64, 64)
	go func() {
		defer close(out)
		defer sub.Close()
		msgs := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				id, err := strconv.ParseUint(m.Payload, 10, 64)
				if err != nil {
					continue // not an announcement of ours
				}
				select {
				case out <- id:
				default: // the reader is behind; it polls anyway
				}
			}
		}
	}()
	return out, nil
}

// Close releases the connections.
func (n *Notifier) Close() error { return n.client.Close() }
