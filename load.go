package whycache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/whycache/whycache/logstore"
)

// loadGroup holds the loads of GetOrLoad in flight in one Instance, one
// per key. Its zero value is ready.
type loadGroup struct {
	mu    sync.Mutex
	calls map[string]*loadCall
}

// loadCall is one load in flight; done is closed when val and err are set.
type loadCall struct {
	done chan struct{}
	val  []byte
	err  error
}

// GetOrLoad returns the value of key; on a miss (a missing or expired key)
// it calls load, commits the value it returns through the log like Set
// (SetWithTTL when the ttl it returns is positive; 0 means no expiry), and
// returns it.
//
// Concurrent misses of one key in this Instance call load once: the other
// callers wait for its result, each for as long as its own ctx allows
// (then it returns ctx's error). load runs with the context of the caller
// that started it; when that context ends the load, a waiter whose own
// context is still live starts a load of its own. Processes and machines
// do not coordinate: each may load the key once.
//
// An error from load is returned as is and nothing is stored; the next
// GetOrLoad calls load again. A panic in load reaches the caller whose
// load it was, after the key is released; the callers waiting for it get
// an error wrapping ErrLoadPanicked. A negative ttl fails with ErrBadTTL.
// Other errors are those of Get and Set; a value committed but not applied
// locally is returned without error (the next Update applies it).
func (c *Instance) GetOrLoad(ctx context.Context, key []byte,
	load func(ctx context.Context) (value []byte, ttl time.Duration, err error)) ([]byte, error) {
	for {
		v, err := c.Get(key)
		if !errors.Is(err, ErrNotFound) {
			return v, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.loads.mu.Lock()
		call, waiting := c.loads.calls[string(key)]
		if !waiting {
			call = &loadCall{done: make(chan struct{})}
			if c.loads.calls == nil {
				c.loads.calls = map[string]*loadCall{}
			}
			c.loads.calls[string(key)] = call
		}
		c.loads.mu.Unlock()
		if !waiting {
			return c.runLoad(ctx, key, call, load)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-call.done:
		}
		if call.err != nil && isContextErr(call.err) && ctx.Err() == nil {
			continue // the loader's context ended, not ours: load again
		}
		if call.err != nil {
			return nil, call.err
		}
		return bytes.Clone(call.val), nil
	}
}

// runLoad runs load for the callers of key and publishes its result to
// them. The key is released, and waiters woken, even when load panics.
func (c *Instance) runLoad(ctx context.Context, key []byte, call *loadCall,
	load func(ctx context.Context) ([]byte, time.Duration, error)) (val []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			call.err = fmt.Errorf("%w: key %.40q: %v", ErrLoadPanicked, key, r)
			c.finishLoad(key, call)
			panic(r)
		}
		call.val, call.err = val, err
		c.finishLoad(key, call)
	}()
	// A load finished just before this one started may have stored it.
	if v, err := c.Get(key); !errors.Is(err, ErrNotFound) {
		return v, err
	}
	v, ttl, err := load(ctx)
	if err != nil {
		return nil, err
	}
	it := logstore.Item{Key: key, Value: v}
	if ttl < 0 {
		return nil, fmt.Errorf("%w: load of %.40q returned ttl %v", ErrBadTTL, key, ttl)
	}
	if ttl > 0 {
		if it.Expires, err = ttlExpiry(ttl); err != nil {
			return nil, err
		}
	}
	if id, err := c.commitItems(ctx, []logstore.Item{it}); err != nil && id == 0 {
		return nil, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// finishLoad releases key and wakes the callers waiting for call.
func (c *Instance) finishLoad(key []byte, call *loadCall) {
	c.loads.mu.Lock()
	delete(c.loads.calls, string(key))
	c.loads.mu.Unlock()
	close(call.done)
}

// isContextErr reports whether err comes from a context that ended.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
