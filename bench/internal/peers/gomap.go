package peers

import (
	"context"
	"runtime"
	"sync"

	"github.com/whycache/whycache/bench/internal/workload"
)

// GoMap is the in-process baseline: a map[string][]byte behind a
// sync.RWMutex. Every process holds its own copy.
type GoMap struct{}

// Info describes the Go map.
func (GoMap) Info() Info {
	return Info{
		Name:    "go-map",
		Sharing: PerProcess,
		Memory:  "resident set growth",
		Notes:   "map[string][]byte + sync.RWMutex; Get copies the value under RLock",
	}
}

// Check reports nothing missing.
func (GoMap) Check() error { return nil }

// Version returns the Go version.
func (GoMap) Version() string { return runtime.Version() }

// Start does nothing: there is nothing to share.
func (GoMap) Start(ctx context.Context, dir string) (Env, func() error, error) {
	return Env{Dir: dir}, func() error { return nil }, nil
}

// Open returns an empty map.
func (GoMap) Open(Env, Mode) (Conn, error) { return &mapConn{m: make(map[string][]byte)}, nil }

type mapConn struct {
	mu sync.RWMutex // guards m and the values' bytes
	m  map[string][]byte
}

func (c *mapConn) Get(dst, key []byte) ([]byte, bool, error) {
	c.mu.RLock()
	v, ok := c.m[string(key)]
	dst = append(dst, v...)
	c.mu.RUnlock()
	return dst, ok, nil
}

// Put overwrites values of the same length in place and stores copies of
// new ones.
func (c *mapConn) Put(b *workload.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range b.Len() {
		k, v := b.Key(i), b.Value(i)
		if old, ok := c.m[string(k)]; ok && len(old) == len(v) {
			copy(old, v)
			continue
		}
		c.m[string(k)] = append([]byte(nil), v...)
	}
	return nil
}

func (c *mapConn) Close() error { return nil }
