package respserver

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/tidwall/redcon"
	"github.com/whycache/whycache"
)

// setOptions are the parsed options of SET.
type setOptions struct {
	expiresAt time.Time // with EX, PX, EXAT or PXAT
	nx, xx    bool
	get       bool
	keepTTL   bool
	hasExpiry bool
}

// parseSet parses SET's options (args[3:]); the error is a reply line.
func parseSet(args [][]byte, now time.Time) (setOptions, string) {
	var o setOptions
	for i := 3; i < len(args); i++ {
		opt := string(appendLower(nil, args[i]))
		switch opt {
		case "nx":
			o.nx = true
		case "xx":
			o.xx = true
		case "get":
			o.get = true
		case "keepttl":
			o.keepTTL = true
		case "ex", "px", "exat", "pxat":
			if o.hasExpiry || i+1 >= len(args) {
				return o, errSyntax
			}
			i++
			var bad string
			if o.expiresAt, bad = parseExpiry(opt, args[i], now, "set"); bad != "" {
				return o, bad
			}
			o.hasExpiry = true
		default:
			return o, errSyntax
		}
	}
	if (o.nx && o.xx) || (o.keepTTL && o.hasExpiry) {
		return o, errSyntax
	}
	return o, ""
}

// parseExpiry parses the expiry arg of option opt ("ex", "px", "exat",
// "pxat") of command cmd, relative ones from now; the error is a reply
// line.
func parseExpiry(opt string, arg []byte, now time.Time, cmd string) (time.Time, string) {
	n, err := strconv.ParseInt(string(arg), 10, 64)
	switch {
	case err != nil:
		return time.Time{}, errNotInt
	case n <= 0:
		return time.Time{}, "ERR invalid expire time in '" + cmd + "' command"
	}
	switch opt {
	case "ex":
		return now.Add(durationOf(n, time.Second)), ""
	case "px":
		return now.Add(durationOf(n, time.Millisecond)), ""
	case "exat":
		return time.Unix(n, 0), ""
	default: // "pxat"
		return time.UnixMilli(n), ""
	}
}

// durationOf is n units, saturated instead of overflowing (an expiry
// past the year 2262 is then refused by SetMulti with ErrBadTTL).
func durationOf(n int64, unit time.Duration) time.Duration {
	if n > math.MaxInt64/int64(unit) {
		return math.MaxInt64
	}
	return time.Duration(n) * unit
}

func (s *Server) set(c redcon.Conn, _ *client, args [][]byte) {
	o, bad := parseSet(args, time.Now())
	switch {
	case bad != "":
		c.WriteError(bad)
		return
	case o.nx || o.xx:
		c.WriteError("ERR SET NX and XX are not supported: a whycache write is an unconditional log commit, and a check of the local state before it would not hold across machines")
		return
	case o.get:
		c.WriteError("ERR SET GET is not supported: a whycache write does not read and replace in one step")
		return
	case o.keepTTL:
		c.WriteError("ERR SET KEEPTTL is not supported: the expiry read here may already be replaced on another machine")
		return
	}
	var err error
	if o.hasExpiry {
		err = s.setExpiring(args[1], args[2], o.expiresAt)
	} else {
		_, err = s.inst.Set(s.ctx, args[1], args[2])
	}
	if err != nil {
		c.WriteError(errorReply(err))
		return
	}
	c.WriteString("OK")
}

// isPlainSet reports whether args is a SET of one key and value without
// options: the commands runPipeline commits together.
func isPlainSet(args [][]byte) bool {
	return len(args) == 3 && len(args[0]) == 3 &&
		args[0][0]|0x20 == 's' && args[0][1]|0x20 == 'e' && args[0][2]|0x20 == 't'
}

// runPipeline runs pipelined commands in order, committing every run of
// consecutive plain SETs with one SetMulti. A run commits all its items
// or none, and it has been applied locally when its replies are written,
// so each connection keeps its order and reads its own writes. When the
// run fails for a reason that concerns one item (an empty key, a value
// too large), the run is done again one SET at a time so that each gets
// its own reply.
func (s *Server) runPipeline(c redcon.Conn, cl *client, cmds []redcon.Command) {
	for i := 0; i < len(cmds); {
		j := i
		for j < len(cmds) && cl.authed && isPlainSet(cmds[j].Args) {
			j++
		}
		if j-i < 2 {
			s.exec(c, cl, cmds[i].Args)
			if cl.quit {
				return // QUIT: the rest of the pipeline is not run
			}
			i++
			continue
		}
		s.setRun(c, cl, cmds[i:j])
		i = j
	}
}

// setRun commits the plain SETs of cmds with one SetMulti; a later SET of
// the same key wins, as it would one at a time.
func (s *Server) setRun(c redcon.Conn, cl *client, cmds []redcon.Command) {
	s.commands.Add(uint64(len(cmds)))
	items := lastWrites(len(cmds), func(i int) ([]byte, []byte) { return cmds[i].Args[1], cmds[i].Args[2] })
	_, err := s.inst.SetMulti(s.ctx, items)
	if errors.Is(err, whycache.ErrTooLarge) || errors.Is(err, whycache.ErrEmptyKey) {
		s.commands.Add(-uint64(len(cmds)))
		for _, cmd := range cmds {
			s.exec(c, cl, cmd.Args)
		}
		return
	}
	for range cmds {
		if err != nil {
			c.WriteError(errorReply(err))
		} else {
			c.WriteString("OK")
		}
	}
}

// mset answers MSET key value [key value ...]: every pair in one commit
// (SetMulti), as Redis sets them atomically; a later pair of the same key
// wins. Each key loses its expiry, as with a plain SET.
func (s *Server) mset(c redcon.Conn, _ *client, args [][]byte) {
	if len(args)%2 == 0 {
		c.WriteError("ERR wrong number of arguments for 'mset' command")
		return
	}
	items := lastWrites(len(args)/2, func(i int) ([]byte, []byte) { return args[1+2*i], args[2+2*i] })
	if _, err := s.inst.SetMulti(s.ctx, items); err != nil {
		c.WriteError(errorReply(err))
		return
	}
	c.WriteString("OK")
}

// setex answers SETEX key seconds value and PSETEX key milliseconds
// value: SET key value EX|PX n.
func (s *Server) setex(c redcon.Conn, cl *client, args [][]byte) {
	name, opt := string(cl.lower), "ex" // cl.lower: the name as looked up
	if name == "psetex" {
		opt = "px"
	}
	at, bad := parseExpiry(opt, args[2], time.Now(), name)
	if bad != "" {
		c.WriteError(bad)
		return
	}
	if err := s.setExpiring(args[1], args[3], at); err != nil {
		c.WriteError(errorReply(err))
		return
	}
	c.WriteString("OK")
}

// lastWrites returns the items of n writes in order, pair(i) giving the
// key and value of the i-th, one item per key with the value of its last
// write, as the writes one at a time would leave it.
func lastWrites(n int, pair func(i int) (key, value []byte)) []whycache.Item {
	items := make([]whycache.Item, 0, n)
	index := make(map[string]int, n)
	for i := range n {
		k, v := pair(i)
		if at, dup := index[string(k)]; dup {
			items[at].Value = v
			continue
		}
		index[string(k)] = len(items)
		items = append(items, whycache.Item{Key: k, Value: v})
	}
	return items
}
