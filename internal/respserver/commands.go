package respserver

import (
	"context"
	"errors"
	"strings"

	"github.com/tidwall/redcon"
	"github.com/whycache/whycache"
)

// commandSpec is one command of the table.
type commandSpec struct {
	name string // lower case, as COMMAND and errors show it
	// arity follows Redis: n > 0 is exactly n arguments (the name
	// included), n < 0 is at least -n.
	arity int
	// noAuth lets the command run before AUTH.
	noAuth bool
	// write marks commands that commit to the log (COMMAND's flags).
	write bool
	// onLoop marks commands that run on the event loop: they never wait
	// (GET and MGET read with Instance.TryAppendGet and defer to a
	// goroutine when the read would wait). The others run on a goroutine
	// (offload), since they may wait: for the log, or for a writer's batch
	// of the state (up to the read timeout for a stopped writer).
	onLoop bool
	run    func(s *Server, c redcon.Conn, cl *client, args [][]byte)
}

// arityOK reports whether n arguments fit the command's arity.
func (sp *commandSpec) arityOK(n int) bool {
	if sp.arity >= 0 {
		return n == sp.arity
	}
	return n >= -sp.arity
}

// commandTable maps lower-case command names to their specs; filled by
// init (COMMAND reads the table, so it cannot be a plain initializer).
var commandTable map[string]*commandSpec

func init() {
	specs := []*commandSpec{
		{name: "get", arity: 2, onLoop: true, run: (*Server).get},
		{name: "mget", arity: -2, onLoop: true, run: (*Server).mget},
		{name: "set", arity: -3, write: true, run: (*Server).set},
		{name: "mset", arity: -3, write: true, run: (*Server).mset},
		{name: "setex", arity: 4, write: true, run: (*Server).setex},
		{name: "psetex", arity: 4, write: true, run: (*Server).setex},
		{name: "del", arity: -2, write: true, run: (*Server).del},
		{name: "unlink", arity: -2, write: true, run: (*Server).del},
		{name: "exists", arity: -2, run: (*Server).exists},
		{name: "ttl", arity: 2, run: (*Server).ttl},
		{name: "pttl", arity: 2, run: (*Server).pttl},
		{name: "expire", arity: -3, write: true, run: (*Server).expireRefused},
		{name: "pexpire", arity: -3, write: true, run: (*Server).expireRefused},
		{name: "expireat", arity: -3, write: true, run: (*Server).expireRefused},
		{name: "pexpireat", arity: -3, write: true, run: (*Server).expireRefused},
		{name: "persist", arity: 2, write: true, run: (*Server).expireRefused},
		{name: "incr", arity: 2, write: true, run: (*Server).readModifyWriteRefused},
		{name: "incrby", arity: 3, write: true, run: (*Server).readModifyWriteRefused},
		{name: "decr", arity: 2, write: true, run: (*Server).readModifyWriteRefused},
		{name: "decrby", arity: 3, write: true, run: (*Server).readModifyWriteRefused},
		{name: "append", arity: 3, write: true, run: (*Server).readModifyWriteRefused},
		{name: "getset", arity: 3, write: true, run: (*Server).readModifyWriteRefused},
		{name: "setnx", arity: 3, write: true, run: (*Server).readModifyWriteRefused},
		{name: "scan", arity: -2, run: (*Server).scan},
		{name: "keys", arity: 2, run: (*Server).keys},
		{name: "dbsize", arity: 1, run: (*Server).dbsize},
		{name: "ping", arity: -1, noAuth: true, onLoop: true, run: (*Server).ping},
		{name: "echo", arity: 2, onLoop: true, run: (*Server).echo},
		{name: "info", arity: -1, run: (*Server).info},
		{name: "quit", arity: -1, noAuth: true, onLoop: true, run: (*Server).quit},
		{name: "select", arity: 2, onLoop: true, run: (*Server).selectDB},
		{name: "command", arity: -1, onLoop: true, run: (*Server).command},
		{name: "client", arity: -2, onLoop: true, run: (*Server).clientCmd},
		{name: "hello", arity: -1, noAuth: true, onLoop: true, run: (*Server).hello},
		{name: "auth", arity: -2, noAuth: true, onLoop: true, run: (*Server).auth},
		{name: "config", arity: -2, onLoop: true, run: (*Server).config},
	}
	commandTable = make(map[string]*commandSpec, len(specs))
	for _, sp := range specs {
		commandTable[sp.name] = sp
	}
}

// appendGet reads key's value for a command of cl: on the event loop
// without waiting, setting cl.deferred and returning errDeferred where the
// read would wait; elsewhere with AppendGet.
func (s *Server) appendGet(cl *client, dst, key []byte) ([]byte, error) {
	if !cl.onLoop {
		return s.inst.AppendGet(dst, key)
	}
	v, err := s.inst.TryAppendGet(dst, key)
	if errors.Is(err, whycache.ErrWouldWait) {
		cl.deferred = true
		return dst, errDeferred
	}
	return v, err
}

// errDeferred is what appendGet returns on the event loop for a read that
// would wait: the handler writes nothing and the loop hands the command to
// a goroutine.
var errDeferred = errors.New("respserver: read deferred to a goroutine")

// maxKeptBuffer bounds the value buffer a connection keeps between
// commands.
const maxKeptBuffer = 1 << 20

func (s *Server) get(c redcon.Conn, cl *client, args [][]byte) {
	v, err := s.appendGet(cl, cl.buf[:0], args[1])
	switch {
	case errors.Is(err, errDeferred):
		return // nothing written: the command runs again on a goroutine
	case err == nil:
		c.WriteBulk(v)
		if cap(v) <= maxKeptBuffer {
			cl.buf = v[:0]
		}
	case errors.Is(err, whycache.ErrNotFound), errors.Is(err, whycache.ErrEmptyKey):
		c.WriteNull()
	default:
		c.WriteError(errorReply(err))
	}
}

func (s *Server) mget(c redcon.Conn, cl *client, args [][]byte) {
	// Read every value before the reply starts, so that an error is one
	// error reply and not half an array.
	buf := cl.buf[:0]
	ends := make([]int, 0, len(args)-1) // end of each value in buf; -1 for nil
	for _, k := range args[1:] {
		v, err := s.appendGet(cl, buf, k)
		switch {
		case errors.Is(err, errDeferred):
			return // nothing written: the command runs again on a goroutine
		case err == nil:
			buf = v
			ends = append(ends, len(buf))
		case errors.Is(err, whycache.ErrNotFound), errors.Is(err, whycache.ErrEmptyKey):
			ends = append(ends, -1)
		default:
			c.WriteError(errorReply(err))
			return
		}
	}
	c.WriteArray(len(ends))
	start := 0
	for _, end := range ends {
		if end < 0 {
			c.WriteNull()
			continue
		}
		c.WriteBulk(buf[start:end])
		start = end
	}
	if cap(buf) <= maxKeptBuffer {
		cl.buf = buf[:0]
	}
}

// exists reports whether key is in the state; err is a state error.
func (s *Server) has(cl *client, key []byte) (bool, error) {
	v, err := s.inst.AppendGet(cl.buf[:0], key)
	switch {
	case err == nil:
		if cap(v) <= maxKeptBuffer {
			cl.buf = v[:0]
		}
		return true, nil
	case errors.Is(err, whycache.ErrNotFound), errors.Is(err, whycache.ErrEmptyKey):
		return false, nil
	}
	return false, err
}

// countExisting returns how many of keys are in the state.
func (s *Server) countExisting(cl *client, keys [][]byte) (int, error) {
	n := 0
	for _, k := range keys {
		ok, err := s.has(cl, k)
		if err != nil {
			return 0, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func (s *Server) exists(c redcon.Conn, cl *client, args [][]byte) {
	n, err := s.countExisting(cl, args[1:])
	if err != nil {
		c.WriteError(errorReply(err))
		return
	}
	c.WriteInt(n)
}

// del deletes the keys in one commit and replies with how many of them
// existed just before (each distinct key counted once, as Redis does).
func (s *Server) del(c redcon.Conn, cl *client, args [][]byte) {
	seen := make(map[string]bool, len(args)-1)
	keys := make([][]byte, 0, len(args)-1)
	for _, k := range args[1:] {
		if len(k) == 0 || seen[string(k)] {
			continue // an empty key never exists
		}
		seen[string(k)] = true
		keys = append(keys, k)
	}
	n, err := s.countExisting(cl, keys)
	if err != nil {
		c.WriteError(errorReply(err))
		return
	}
	if len(keys) > 0 {
		if _, err := s.inst.DeleteMulti(s.ctx, keys); err != nil {
			c.WriteError(errorReply(err))
			return
		}
	}
	c.WriteInt(n)
}

func (s *Server) dbsize(c redcon.Conn, _ *client, _ [][]byte) {
	st, err := s.inst.Stats(nil)
	if err != nil {
		c.WriteError(errorReply(err))
		return
	}
	c.WriteUint64(st.Keys)
}

// errorReply turns an error of the Instance into a Redis error line.
func errorReply(err error) string {
	switch {
	case errors.Is(err, whycache.ErrInvalidState):
		return "LOADING the whycache state was never filled: the follow loop fills it at its first poll (or run 'whycache update')"
	case errors.Is(err, whycache.ErrTooLarge):
		return "ERR value too large for one log record: " + oneLine(err)
	case errors.Is(err, whycache.ErrEmptyKey):
		return "ERR empty keys are not supported by whycache"
	case errors.Is(err, whycache.ErrBadTTL):
		return "ERR invalid expire time: " + oneLine(err)
	case errors.Is(err, whycache.ErrReadOnly):
		return "READONLY the whycache state is open read-only"
	case errors.Is(err, context.Canceled):
		return "ERR the server is shutting down; the write may or may not have been committed"
	}
	return "ERR " + oneLine(err)
}

// oneLine keeps an error message on one line, as RESP requires.
func oneLine(err error) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error())
}
