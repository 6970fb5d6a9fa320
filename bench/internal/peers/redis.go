package peers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/whycache/whycache/bench/internal/workload"
)

// Redis is a redis-server started for the round on a free loopback port
// with persistence off, reached with github.com/redis/go-redis/v9.
type Redis struct{}

// Info describes Redis.
func (Redis) Info() Info {
	return Info{
		Name:          "redis",
		Sharing:       Server,
		WriterProcess: true,
		Memory:        "INFO used_memory growth",
		Notes:         "own redis-server on a free loopback port, no persistence; go-redis, one GET per Get (no pipelining), MSET per batch",
	}
}

// Check reports a missing redis-server.
func (Redis) Check() error { return needBinary("redis", "redis-server", "redis-server") }

// Version returns redis-server's version line.
func (Redis) Version() string {
	return binaryVersion("redis-server", "--version") + "; go-redis " + moduleVersion("github.com/redis/go-redis/v9")
}

// Start runs redis-server in dir without persistence.
func (Redis) Start(ctx context.Context, dir string) (Env, func() error, error) {
	addr, stop, err := startServer(ctx, dir, "redis", "redis-server", func(port int) []string {
		return []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir,
		}
	})
	return Env{Dir: dir, Addr: addr}, stop, err
}

// Open connects a client.
func (Redis) Open(env Env, mode Mode) (Conn, error) {
	c := redis.NewClient(&redis.Options{Addr: env.Addr, PoolSize: 4})
	if err := c.Ping(context.Background()).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("peers: redis: %w", err)
	}
	return &redisConn{c: c}, nil
}

type redisConn struct {
	c     *redis.Client
	pairs []any // reused by Put (one Put at a time)
}

func (c *redisConn) Get(dst, key []byte) ([]byte, bool, error) {
	v, err := c.c.Get(context.Background(), string(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return dst, false, nil
	}
	if err != nil {
		return dst, false, fmt.Errorf("peers: redis: %w", err)
	}
	return append(dst, v...), true, nil
}

func (c *redisConn) Put(b *workload.Batch) error {
	c.pairs = c.pairs[:0]
	for i := range b.Len() {
		c.pairs = append(c.pairs, b.Key(i), b.Value(i))
	}
	if err := c.c.MSet(context.Background(), c.pairs...).Err(); err != nil {
		return fmt.Errorf("peers: redis: %w", err)
	}
	return nil
}

// Footprint returns the server's used_memory.
func (c *redisConn) Footprint() (int64, error) {
	info, err := c.c.Info(context.Background(), "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("peers: redis: %w", err)
	}
	return infoField(info, "used_memory")
}

// infoField finds "name:value" in INFO output.
func infoField(info, name string) (int64, error) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("peers: redis: no %s in INFO", name)
}

func (c *redisConn) Close() error { return c.c.Close() }
