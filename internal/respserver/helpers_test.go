package respserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore/memstore"
)

// startServer serves a new, filled instance on a free loopback port and
// returns the address and the instance.
func startServer(t testing.TB, password string) (string, *whycache.Instance) {
	t.Helper()
	store, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := whycache.Open(store, whycache.Options{StatePath: filepath.Join(t.TempDir(), "serve.state")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	if err := inst.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	return serveInstance(t, inst, password), inst
}

// serveInstance serves inst on a free loopback port until the test ends.
func serveInstance(t testing.TB, inst *whycache.Instance, password string) string {
	t.Helper()
	srv, addr, done := startServing(t, inst, password)
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr
}

// startServing serves inst on a free loopback port, returning the server,
// its address and the channel that receives what Serve returns.
func startServing(t testing.TB, inst *whycache.Instance, password string) (*Server, string, <-chan error) {
	t.Helper()
	srv, err := New(Config{Instance: inst, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return srv, ln.Addr().String(), done
}

// rawConn speaks RESP by hand, for the replies a client library would
// hide or refuse to send.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// encode returns the RESP array of args.
func encode(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// send writes raw bytes in one write.
func (rc *rawConn) send(raw string) {
	rc.t.Helper()
	rc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.c.Write([]byte(raw)); err != nil {
		rc.t.Fatal(err)
	}
}

// do sends one command and returns its reply rendered by read.
func (rc *rawConn) do(args ...string) string {
	rc.t.Helper()
	rc.send(encode(args...))
	return rc.read()
}

// read reads one reply and renders it: +OK as "OK", errors as "-ERR
// ...", integers as ":N", bulk strings quoted, nil as "(nil)", arrays as
// "[a b]".
func (rc *rawConn) read() string {
	rc.t.Helper()
	s, err := readReply(rc.r)
	if err != nil {
		rc.t.Fatalf("read reply: %v", err)
	}
	return s
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return line, nil
	case ':':
		return line, nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return strconv.Quote(string(buf[:n])), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return "[" + strings.Join(parts, " ") + "]", nil
	}
	return "", fmt.Errorf("unexpected reply line %q", line)
}
