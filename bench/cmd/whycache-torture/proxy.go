package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Timeouts of connections through the proxy (dial, and each read or write
// of the MySQL driver), so that a cut fails a query quickly.
const (
	timeoutDial = time.Second
	timeoutIO   = 3 * time.Second
)

// proxy forwards loopback TCP connections to an upstream address, and can
// be cut (every connection closed, new ones closed at once) and restored.
type proxy struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup // accept loop and pipes

	mu    sync.Mutex // guards the following
	up    bool
	conns map[net.Conn]struct{} // open connections, both sides
}

// newProxy listens on a free loopback port and forwards to upstream.
func newProxy(upstream string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: proxy: %w", err)
	}
	p := &proxy{ln: ln, upstream: upstream, up: true, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

// track registers c while the proxy is up, and reports whether it did.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

// pipe connects a client to the upstream and copies both ways until either
// side ends or the proxy is cut.
func (p *proxy) pipe(client net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.upstream, timeoutDial)
	if err != nil || !p.track(up) {
		if up != nil {
			up.Close()
		}
		p.untrack(client)
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, client)
		p.untrack(client, up)
		close(done)
	}()
	io.Copy(client, up)
	p.untrack(client, up)
	<-done
}

// cut closes every connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = false
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// restore lets connections through again.
func (p *proxy) restore() {
	p.mu.Lock()
	p.up = true
	p.mu.Unlock()
}

// Close stops the proxy and waits for its goroutines.
func (p *proxy) Close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}
