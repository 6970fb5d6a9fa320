package respserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
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

	// loops are the event loops that serve the connections every Serve
	// accepts: as many as GOMAXPROCS when New ran.
	loops *gnet.Client
	// writes counts the goroutines running connections' writes
	// (offload); Close waits for them, so that the caller may close the
	// Instance after it.
	writes sync.WaitGroup

	clients  atomic.Int64  // connected clients
	lastID   atomic.Uint64 // the last client id handed out
	commands atomic.Uint64 // commands processed

	mu        sync.Mutex // guards the following
	listeners []net.Listener
	closed    bool

	testHookEnroll func() // when set (by tests, before Serve), enroll calls it first
}

// ErrClosed is returned by Serve once Close was called.
var ErrClosed = errors.New("respserver: server closed")

// New returns a Server for cfg. It starts the event loops (as many as
// GOMAXPROCS), which Close stops.
func New(cfg Config) (*Server, error) {
	if cfg.Instance == nil {
		return nil, errors.New("respserver: Config.Instance is nil")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		inst:     cfg.Instance,
		password: cfg.Password,
		follow:   cfg.FollowStats,
		log:      log,
		started:  time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		cursors:  newCursorTable(maxCursors, cursorTTL),
	}
	loops, err := gnet.NewClient(&loop{s: s},
		gnet.WithNumEventLoop(runtime.GOMAXPROCS(0)),
		gnet.WithLockOSThread(true),
		gnet.WithLogger(gnetLogger{log}))
	if err == nil {
		err = loops.Start()
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("respserver: event loops: %w", err)
	}
	s.loops = loops
	return s, nil
}

// Serve accepts connections on ln until Close (then it returns nil) or
// until ln fails, and hands each to an event loop. It closes ln when it
// returns. ln must yield *net.TCPConn or *net.UnixConn connections.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	defer ln.Close()
	var delay time.Duration // after a failed Accept, as net/http does
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("whycache: serve: accept", "err", err, "retry in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.enroll(nc)
	}
}

// enroll hands nc to an event loop (which takes a copy of its descriptor;
// nc itself is closed). It holds mu, so that Close cannot stop the loops
// meanwhile: gnet's EnrollContext waits for a loop that stopped without
// end. After Close it closes nc.
func (s *Server) enroll(nc net.Conn) {
	if h := s.testHookEnroll; h != nil {
		h()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return
	}
	cl := &client{id: s.lastID.Add(1), authed: s.password == ""}
	st := &conn{cl: cl}
	st.r = replies{cl: cl, remote: nc.RemoteAddr().String()}
	if _, err := s.loops.EnrollContext(nc, st); err != nil {
		s.log.Warn("whycache: serve: connection not served", "remote", st.r.remote, "err", err)
		nc.Close()
	}
}

// isClosed reports whether Close was called.
func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops every Serve, closes the connections, cancels writes in
// progress, stops the event loops and waits for the writes to return. It
// does not close the Instance, which the caller may close once Close
// returned.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	s.cancel()
	for _, ln := range ls {
		ln.Close()
	}
	err := s.loops.Stop()
	s.writes.Wait() // no loop runs any more: no write starts after this
	if err != nil {
		return fmt.Errorf("respserver: close: %w", err)
	}
	return nil
}

// client is the state of one connection's session. It is used by one
// goroutine at a time: the connection's event loop, or the goroutine that
// runs its writes (see conn).
type client struct {
	id     uint64
	authed bool
	name   string
	quit   bool   // QUIT was received: no more commands are run
	buf    []byte // reused buffer for values read from the state
	lower  []byte // reused buffer for the lowercased command name
	// last is the spec of the last command looked up, so that a run of
	// one command skips the table (see lookup).
	last *commandSpec
	// onLoop is set while a command runs on the event loop; a handler
	// that would wait there sets deferred and writes nothing (appendGet).
	onLoop, deferred bool
}

// exec looks the command up and runs it (run).
func (s *Server) exec(c redcon.Conn, cl *client, args [][]byte) {
	s.run(c, cl, lookup(cl, args), args)
}

// run runs the command args that spec (nil for an unknown one) describes,
// after checking its arity and the client's authentication.
func (s *Server) run(c redcon.Conn, cl *client, spec *commandSpec, args [][]byte) {
	s.commands.Add(1)
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
