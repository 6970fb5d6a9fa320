package respserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
	"github.com/whycache/whycache"
)

// Config configures a Server. It is read once, by New.
type Config struct {
	// Instance is the cache served. Required. The Server does not close it.
	Instance *whycache.Instance

	// Password, when not empty, is required by AUTH (or HELLO ... AUTH)
	// before any command but AUTH, HELLO, PING and QUIT.
	Password string

	// FollowStats, when set, returns the figures of the follow loop's last
	// poll, shown by INFO replication; ok is false before the first poll.
	// It is called from connection goroutines and must be safe for that.
	FollowStats func() (st whycache.FollowStats, ok bool)

	// Logger receives connection errors; nil means slog.Default().
	Logger *slog.Logger
}

// Server answers Redis clients from an Instance. Create it with New, run
// Serve on one or more listeners, and stop it with Close. Its methods are
// safe for concurrent use.
type Server struct {
	inst     *whycache.Instance
	password string
	follow   func() (whycache.FollowStats, bool)
	log      *slog.Logger
	started  time.Time

	// ctx is the context of writes; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	cursors cursorTable

	clients  atomic.Int64  // connected clients
	lastID   atomic.Uint64 // the last client id handed out
	commands atomic.Uint64 // commands processed

	mu        sync.Mutex // guards the following
	listeners []listener
	closed    bool
}

// listener is one Serve: the redcon server and the listener it serves
// (closed by Close too, in case Close comes before redcon took it).
type listener struct {
	rs *redcon.Server
	ln net.Listener
}

// ErrClosed is returned by Serve once Close was called.
var ErrClosed = errors.New("respserver: server closed")

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Instance == nil {
		return nil, errors.New("respserver: Config.Instance is nil")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		inst:     cfg.Instance,
		password: cfg.Password,
		follow:   cfg.FollowStats,
		log:      log,
		started:  time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		cursors:  newCursorTable(maxCursors, cursorTTL),
	}, nil
}

// Serve accepts connections on ln until Close (then it returns nil) or
// until ln fails. It closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	rs := redcon.NewServerNetwork(ln.Addr().Network(), ln.Addr().String(), s.handle, s.accept, s.closedConn)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.listeners = append(s.listeners, listener{rs, ln})
	s.mu.Unlock()
	rs.AcceptError = func(err error) { s.log.Warn("whycache: serve: accept", "err", err) }
	err := rs.Serve(guardListener{ln})
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	return err
}

// Close stops every Serve, closes the connections and cancels writes in
// progress. It does not close the Instance.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ls := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	s.cancel()
	for _, l := range ls {
		l.rs.Close()
		l.ln.Close()
	}
	return nil
}

// client is the state of one connection, kept in its redcon context. It
// is used only by the connection's goroutine.
type client struct {
	id     uint64
	authed bool
	name   string
	quit   bool   // QUIT was received: no more commands are run
	buf    []byte // reused buffer for values read from the state
	lower  []byte // reused buffer for the lowercased command name
}

func (s *Server) accept(c redcon.Conn) bool {
	s.clients.Add(1)
	cl := &client{id: s.lastID.Add(1), authed: s.password == ""}
	c.SetContext(cl)
	if g, ok := c.NetConn().(*guardConn); ok {
		g.cl = cl
	}
	return true
}

func (s *Server) closedConn(c redcon.Conn, err error) {
	s.clients.Add(-1)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("whycache: serve: connection closed", "remote", c.RemoteAddr(), "err", err)
	}
}

// handle runs one command. A plain SET followed by more pipelined
// commands takes the whole pipeline, so that runs of plain SETs commit
// together (see runPipeline).
func (s *Server) handle(c redcon.Conn, cmd redcon.Command) {
	cl := c.Context().(*client)
	if cl.authed && isPlainSet(cmd.Args) {
		if next := c.PeekPipeline(); len(next) > 0 && isPlainSet(next[0].Args) {
			s.runPipeline(c, cl, append([]redcon.Command{cmd}, c.ReadPipeline()...))
			return
		}
	}
	s.exec(c, cl, cmd.Args)
}

// exec looks the command up, checks its arity and the client's
// authentication, and runs it.
func (s *Server) exec(c redcon.Conn, cl *client, args [][]byte) {
	s.commands.Add(1)
	cl.lower = appendLower(cl.lower[:0], args[0])
	spec := commandTable[string(cl.lower)]
	switch {
	case spec == nil:
		if !cl.authed {
			c.WriteError(errNoAuth)
			return
		}
		c.WriteError(unknownCommand(args))
	case !cl.authed && !spec.noAuth:
		c.WriteError(errNoAuth)
	case !spec.arityOK(len(args)):
		c.WriteError("ERR wrong number of arguments for '" + spec.name + "' command")
	default:
		spec.run(s, c, cl, args)
	}
}

// appendLower appends b in ASCII lower case to dst.
func appendLower(dst, b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// Error replies shared by several commands, as Redis words them.
const (
	errNoAuth    = "NOAUTH Authentication required."
	errSyntax    = "ERR syntax error"
	errNotInt    = "ERR value is not an integer or out of range"
	errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
)

// unknownCommand is Redis's reply to a command it does not know.
func unknownCommand(args [][]byte) string {
	msg := "ERR unknown command '" + clip(args[0]) + "', with args beginning with: "
	for _, a := range args[1:] {
		msg += "'" + clip(a) + "' "
	}
	return msg
}

// clip shortens an argument quoted in an error to 128 bytes, as Redis
// does, and keeps line breaks out of the one-line error.
func clip(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c == '\r' || c == '\n' {
			c = ' '
		}
		out[i] = c
	}
	return string(out)
}
