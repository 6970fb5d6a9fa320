package respserver

import (
	"errors"
	"net"
)

// maxUnauthBytes bounds what a client may send before it authenticates
// (when a password is set), so that a client without the password cannot
// make the server buffer a large request. AUTH and HELLO fit many times.
const maxUnauthBytes = 64 << 10

// errUnauthTooLong ends a connection that sent maxUnauthBytes without
// authenticating.
var errUnauthTooLong = errors.New("respserver: too much input before AUTH")

// guardListener wraps the connections it accepts in guardConns.
type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c}, nil
}

// guardConn counts what an unauthenticated client sends and fails the
// read that would pass maxUnauthBytes. Its fields are used by the
// connection's goroutine only (cl is set before that goroutine starts).
type guardConn struct {
	net.Conn
	cl   *client
	read int // bytes read while the client was not authenticated
}

func (g *guardConn) Read(p []byte) (int, error) {
	if g.cl == nil || g.cl.authed {
		return g.Conn.Read(p)
	}
	left := maxUnauthBytes - g.read
	if left <= 0 {
		return 0, errUnauthTooLong
	}
	if len(p) > left {
		p = p[:left]
	}
	n, err := g.Conn.Read(p)
	g.read += n
	return n, err
}
