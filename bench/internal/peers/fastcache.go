package peers

import (
	"context"
	"fmt"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/whycache/whycache/bench/internal/workload"
)

// fastcacheMaxBytes is the capacity given to fastcache: far more than the
// 1M-key workload needs, so nothing is evicted.
const fastcacheMaxBytes = 1 << 30

// Fastcache is github.com/VictoriaMetrics/fastcache: an in-process cache
// of byte slices in large off-heap chunks. Every process holds its own
// copy.
type Fastcache struct{}

// Info describes fastcache.
func (Fastcache) Info() Info {
	return Info{
		Name:    "fastcache",
		Sharing: PerProcess,
		Memory:  "resident set growth",
		Notes:   "capacity 1 GiB (no eviction at 1M keys); HasGet appends into the caller's buffer",
	}
}

// Check reports nothing missing.
func (Fastcache) Check() error { return nil }

// Version returns the module version.
func (Fastcache) Version() string { return moduleVersion("github.com/VictoriaMetrics/fastcache") }

// Start does nothing: there is nothing to share.
func (Fastcache) Start(ctx context.Context, dir string) (Env, func() error, error) {
	return Env{Dir: dir}, func() error { return nil }, nil
}

// Open returns an empty cache.
func (Fastcache) Open(Env, Mode) (Conn, error) {
	return &fastcacheConn{c: fastcache.New(fastcacheMaxBytes)}, nil
}

type fastcacheConn struct{ c *fastcache.Cache }

func (c *fastcacheConn) Get(dst, key []byte) ([]byte, bool, error) {
	out, ok := c.c.HasGet(dst, key)
	return out, ok, nil
}

// Put sets every item and checks that none was evicted or dropped.
func (c *fastcacheConn) Put(b *workload.Batch) error {
	for i := range b.Len() {
		c.c.Set(b.Key(i), b.Value(i))
	}
	var st fastcache.Stats
	c.c.UpdateStats(&st)
	if st.TooBigKeyErrors > 0 || st.InvalidValueLenErrors > 0 {
		return fmt.Errorf("peers: fastcache dropped items: %+v", st)
	}
	return nil
}

func (c *fastcacheConn) Close() error {
	c.c.Reset()
	return nil
}
