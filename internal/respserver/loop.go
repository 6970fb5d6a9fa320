package respserver

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/panjf2000/gnet/v2"
	"github.com/tidwall/redcon"
)

// Input bounds. maxUnauthBytes bounds what a client may send before it
// authenticates (when a password is set), so that a client without the
// password cannot make the server buffer a large request; AUTH and HELLO
// fit many times. maxInputBytes bounds what an authenticated client may
// have sent and the server not yet parsed (Redis's default
// client-query-buffer-limit).
const (
	maxUnauthBytes = 64 << 10
	maxInputBytes  = 1 << 30
)

// input holds the bytes read from a connection that are not parsed yet
// (buf[off:]).
type input struct {
	buf []byte
	off int
}

// pending returns the bytes not parsed yet.
func (in *input) pending() []byte { return in.buf[in.off:] }

// take marks n more bytes parsed. Once all is parsed, a buffer grown
// past maxKeptBuffer (a large value) is let go.
func (in *input) take(n int) {
	in.off += n
	if in.off == len(in.buf) {
		in.buf, in.off = in.buf[:0], 0
		if cap(in.buf) > maxKeptBuffer {
			in.buf = nil
		}
	}
}

// add appends data, first moving what is pending to the front of buf
// when more than half of it was parsed.
func (in *input) add(data []byte) {
	if in.off > 0 && in.off >= len(in.buf)/2 {
		n := copy(in.buf, in.buf[in.off:])
		in.buf, in.off = in.buf[:n], 0
	}
	in.buf = append(in.buf, data...)
}

// conn is the state of one connection, its gnet context. The event loop
// owns it, except that while busy is set the goroutine running the
// connection's writes owns cl and the loop only buffers input.
type conn struct {
	cl     *client
	in     input
	unauth int      // bytes parsed while cl was not authenticated
	args   [][]byte // reused for the arguments of the command parsed
	r      replies
	busy   bool // a goroutine runs the connection's writes (offload)
	gone   bool // OnClose was called
}

// loop is the gnet event handler of a Server: the event loop reads each
// connection when it is readable, parses its commands, runs GET and MGET
// in place (memory reads of the shared state that never wait) and the
// commands that read no state, and sends the replies of one read with one
// write. Any other command (a write, which waits for the log; a read that
// may wait for a writer's batch) and the rest of its read go to a
// goroutine (offload); so does a GET that meets a writer's batch. The
// connection's later input waits for it. A writer stopped inside a batch
// thus holds up only the connections that read, each on its own
// goroutine, and never the loop.
type loop struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (l *loop) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	l.s.clients.Add(1)
	return nil, gnet.None
}

func (l *loop) OnClose(c gnet.Conn, err error) gnet.Action {
	l.s.clients.Add(-1)
	if st, ok := c.Context().(*conn); ok {
		st.gone = true
	}
	if err != nil {
		l.s.log.Debug("whycache: serve: connection closed", "remote", c.RemoteAddr(), "err", err)
	}
	return gnet.None
}

func (l *loop) OnTraffic(c gnet.Conn) gnet.Action {
	st, ok := c.Context().(*conn)
	if !ok {
		return gnet.Close
	}
	data, err := c.Next(-1)
	if err != nil {
		return gnet.Close
	}
	// While busy, cl belongs to the write's goroutine, and the client is
	// authenticated (offload runs only then; nothing unauthenticates).
	if len(st.in.pending())+len(data) > maxInputBytes {
		l.s.log.Debug("whycache: serve: input limit passed", "remote", c.RemoteAddr())
		return gnet.Close
	}
	st.in.add(data)
	if st.busy {
		return gnet.None
	}
	return l.s.process(c, st)
}

// process runs the commands in st's input until it is parsed, a write is
// handed to a goroutine or the connection is to be closed, and sends the
// replies. It runs on the event loop.
func (s *Server) process(c gnet.Conn, st *conn) gnet.Action {
	action := gnet.None
	for !st.busy && !st.r.closing {
		pending := st.in.pending()
		complete, args, rest, err := parseCommand(pending, st.args[:0])
		if err != nil {
			st.r.WriteError("ERR " + err.Error()) // a protocol error, as redcon words it
			action = gnet.Close
			break
		}
		if !complete {
			break
		}
		n := len(pending) - len(rest)
		if !st.cl.authed {
			if st.unauth += n; st.unauth > maxUnauthBytes {
				return gnet.Close // without a reply, as for a longer request
			}
		}
		st.args = args
		if len(args) == 0 {
			st.in.take(n)
			continue
		}
		spec := lookup(st.cl, args)
		if spec != nil && !spec.onLoop && st.cl.authed {
			s.offload(c, st)
			break
		}
		st.cl.onLoop = true
		s.run(&st.r, st.cl, spec, args)
		st.cl.onLoop = false
		if st.cl.deferred {
			st.cl.deferred = false
			s.commands.Add(^uint64(0)) // counted again on the goroutine
			s.offload(c, st)
			break
		}
		st.in.take(n)
	}
	// busy first: while busy, cl belongs to the write's goroutine.
	if !st.busy && !st.cl.authed && st.unauth+len(st.in.pending()) > maxUnauthBytes {
		return gnet.Close
	}
	if len(st.r.out) > 0 {
		if _, err := c.Write(st.r.out); err != nil {
			return gnet.Close
		}
		st.r.out = st.r.out[:0]
		if cap(st.r.out) > maxKeptBuffer {
			st.r.out = nil // gnet copied what the socket did not take
		}
	}
	if st.r.closing && !st.busy {
		return gnet.Close
	}
	return action
}

// parseCommand parses the first command of packet with redcon's parser
// (see redcon.ReadNextCommand), which can panic on a negative bulk length
// in a multibulk request: that is a protocol error too.
func parseCommand(packet []byte, argsbuf [][]byte) (complete bool, args [][]byte, leftover []byte, err error) {
	defer func() {
		if recover() != nil {
			complete, args, leftover, err = false, nil, packet, errBadRequest
		}
	}()
	complete, args, _, leftover, err = redcon.ReadNextCommand(packet, argsbuf)
	return complete, args, leftover, err
}

// errBadRequest is the protocol error of a request redcon's parser
// cannot take.
var errBadRequest = errors.New("Protocol error: invalid request")

// offload takes the complete commands of st's input, from the command
// just parsed on, and runs them on a goroutine of its own, in order, with
// runPipeline (which commits runs of plain SETs together); the
// connection's later input waits in st.in. The replies so far are sent
// first; the goroutine sends its own through the event loop
// (AsyncWrite), which then resumes the connection.
func (s *Server) offload(c gnet.Conn, st *conn) {
	if len(st.r.out) > 0 {
		if _, err := c.Write(st.r.out); err != nil {
			st.r.closing = true
			return
		}
		st.r.out = st.r.out[:0]
	}
	var cmds []redcon.Command
	for {
		pending := st.in.pending()
		complete, args, rest, err := parseCommand(pending, st.args[:0])
		if err != nil || !complete {
			break // left for process, after the writes
		}
		st.args = args
		if len(args) > 0 {
			cmds = append(cmds, redcon.Command{Args: copyArgs(args)})
		}
		st.in.take(len(pending) - len(rest))
	}
	st.busy = true
	s.writes.Add(1)
	go func() {
		defer s.writes.Done()
		r := &replies{cl: st.cl, remote: st.r.remote}
		s.runPipeline(r, st.cl, cmds)
		closing := r.closing || st.cl.quit
		err := c.AsyncWrite(r.out, func(c gnet.Conn, err error) error {
			st.busy = false
			if err != nil || st.gone {
				return nil
			}
			if closing {
				return c.Close()
			}
			if s.process(c, st) == gnet.Close {
				return c.Close()
			}
			return nil
		})
		if err != nil {
			s.log.Debug("whycache: serve: reply after a write", "remote", st.r.remote, "err", err)
		}
	}()
}

// copyArgs returns a copy of args in one new array, for a command that
// outlives the input buffer.
func copyArgs(args [][]byte) [][]byte {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	data := make([]byte, 0, n)
	out := make([][]byte, len(args))
	for i, a := range args {
		start := len(data)
		data = append(data, a...)
		out[i] = data[start:len(data):len(data)]
	}
	return out
}

// lookup returns the spec of the command args names, or nil. It uses
// cl's buffer for the lower-case name, and cl.last before the table.
func lookup(cl *client, args [][]byte) *commandSpec {
	cl.lower = appendLower(cl.lower[:0], args[0])
	if cl.last != nil && cl.last.name == string(cl.lower) {
		return cl.last
	}
	spec := commandTable[string(cl.lower)]
	if spec != nil {
		cl.last = spec
	}
	return spec
}

// gnetLogger sends gnet's log lines to a slog.Logger at debug level
// (errors at warning level). Fatalf logs an error; it does not exit.
type gnetLogger struct{ log *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) {
	g.log.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Infof(format string, args ...any) {
	g.log.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Warnf(format string, args ...any) {
	g.log.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Errorf(format string, args ...any) {
	g.log.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.log.Error("gnet: " + fmt.Sprintf(format, args...))
}
