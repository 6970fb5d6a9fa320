package peers

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/whycache/whycache/bench/internal/workload"
)

// memcachedMemoryMB is the memory limit given to memcached: far more than
// the 1M-key workload needs, so nothing is evicted.
const memcachedMemoryMB = 2048

// Memcached is a memcached started for the round on a free loopback port,
// read with github.com/bradfitz/gomemcache. memcached's text protocol does
// not allow arbitrary bytes in keys, so keys are sent base64-encoded (22
// characters). Batches are written as pipelined "set ... noreply" commands
// over one connection, ended by a no-op round trip (the client has no
// batch write).
type Memcached struct{}

// Info describes memcached.
func (Memcached) Info() Info {
	return Info{
		Name:          "memcached",
		Sharing:       Server,
		WriterProcess: true,
		Memory:        "stats bytes growth",
		Notes:         "own memcached on a free loopback port (4 threads, 2 GiB); gomemcache, one get per Get; keys base64 (22 B); batches as pipelined noreply sets",
	}
}

// Check reports a missing memcached.
func (Memcached) Check() error { return needBinary("memcached", "memcached", "memcached") }

// Version returns memcached's version line.
func (Memcached) Version() string {
	return binaryVersion("memcached", "-V") + "; gomemcache " + moduleVersion("github.com/bradfitz/gomemcache")
}

// Start runs memcached on loopback, TCP only.
func (Memcached) Start(ctx context.Context, dir string) (Env, func() error, error) {
	addr, stop, err := startServer(ctx, dir, "memcached", "memcached", func(port int) []string {
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", strconv.Itoa(memcachedMemoryMB), "-c", "1024"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root") // memcached refuses to run as root without it
		}
		return args
	})
	return Env{Dir: dir, Addr: addr}, stop, err
}

// Open connects a client (and, lazily, the raw connection Put uses).
func (Memcached) Open(env Env, mode Mode) (Conn, error) {
	c := memcache.New(env.Addr)
	c.Timeout = 5 * time.Second
	c.MaxIdleConns = 4
	if err := c.Ping(); err != nil {
		return nil, fmt.Errorf("peers: memcached: %w", err)
	}
	return &memcachedConn{c: c, addr: env.Addr}, nil
}

type memcachedConn struct {
	c    *memcache.Client
	addr string
	kbuf []byte // encoded key of Get

	raw *rawMemcached // Put's connection, opened on first use
}

var mcKeyEncoding = base64.RawURLEncoding

func (c *memcachedConn) Get(dst, key []byte) ([]byte, bool, error) {
	c.kbuf = mcKeyEncoding.AppendEncode(c.kbuf[:0], key)
	it, err := c.c.Get(string(c.kbuf))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return dst, false, nil
	}
	if err != nil {
		return dst, false, fmt.Errorf("peers: memcached: %w", err)
	}
	return append(dst, it.Value...), true, nil
}

func (c *memcachedConn) Put(b *workload.Batch) error {
	if c.raw == nil {
		raw, err := dialRawMemcached(c.addr)
		if err != nil {
			return err
		}
		c.raw = raw
	}
	return c.raw.setBatch(b)
}

// Footprint returns the server's "bytes" statistic.
func (c *memcachedConn) Footprint() (int64, error) {
	if c.raw == nil {
		raw, err := dialRawMemcached(c.addr)
		if err != nil {
			return 0, err
		}
		c.raw = raw
	}
	return c.raw.stat("bytes")
}

func (c *memcachedConn) Close() error {
	c.c.Close()
	if c.raw != nil {
		return c.raw.conn.Close()
	}
	return nil
}

// rawMemcached is a plain text-protocol connection for pipelined writes
// and statistics.
type rawMemcached struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	kbuf []byte
}

func dialRawMemcached(addr string) (*rawMemcached, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("peers: memcached: %w", err)
	}
	return &rawMemcached{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriterSize(conn, 64<<10)}, nil
}

// setBatch pipelines one noreply set per item, then a meta no-op whose
// reply ("MN") says the server has processed everything before it.
func (m *rawMemcached) setBatch(b *workload.Batch) error {
	m.conn.SetDeadline(time.Now().Add(30 * time.Second))
	for i := range b.Len() {
		m.kbuf = mcKeyEncoding.AppendEncode(m.kbuf[:0], b.Key(i))
		m.w.WriteString("set ")
		m.w.Write(m.kbuf)
		m.w.WriteString(" 0 0 " + strconv.Itoa(workload.ValueLen) + " noreply\r\n")
		m.w.Write(b.Value(i))
		m.w.WriteString("\r\n")
	}
	m.w.WriteString("mn\r\n")
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("peers: memcached: %w", err)
	}
	line, err := m.r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("peers: memcached: %w", err)
	}
	if strings.TrimSpace(line) != "MN" {
		return fmt.Errorf("peers: memcached: batch answered %q", strings.TrimSpace(line))
	}
	return nil
}

// stat returns one numeric field of "stats".
func (m *rawMemcached) stat(name string) (int64, error) {
	m.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := m.conn.Write([]byte("stats\r\n")); err != nil {
		return 0, fmt.Errorf("peers: memcached: %w", err)
	}
	val := int64(-1)
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("peers: memcached: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "END" {
			break
		}
		if v, ok := strings.CutPrefix(line, "STAT "+name+" "); ok {
			if val, err = strconv.ParseInt(v, 10, 64); err != nil {
				return 0, fmt.Errorf("peers: memcached: stat %s: %w", name, err)
			}
		}
	}
	if val < 0 {
		return 0, fmt.Errorf("peers: memcached: no stat %s", name)
	}
	return val, nil
}
