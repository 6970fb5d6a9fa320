package respserver

import (
	"errors"
	"time"

	"github.com/tidwall/redcon"
	"github.com/whycache/whycache"
)

// setExpiring commits key=value expiring at the absolute time at (an
// item whose time is past is written invisible, as Redis deletes it).
func (s *Server) setExpiring(key, value []byte, at time.Time) error {
	_, err := s.inst.SetMulti(s.ctx, []whycache.Item{{Key: key, Value: value, ExpiresAt: at}})
	return err
}

// remaining returns the time left before key expires: ok is false for a
// missing (or expired) key, and never is true for a key without expiry.
func (s *Server) remaining(key []byte) (left time.Duration, never, ok bool, err error) {
	_, at, err := s.inst.GetWithExpiry(key)
	switch {
	case errors.Is(err, whycache.ErrNotFound), errors.Is(err, whycache.ErrEmptyKey):
		return 0, false, false, nil
	case err != nil:
		return 0, false, false, err
	case at.IsZero():
		return 0, true, true, nil
	}
	return max(time.Until(at), 0), false, true, nil
}

// replyTTL answers TTL (unit time.Second) and PTTL (time.Millisecond):
// -2 for a missing key, -1 for a key without expiry, else the time left,
// rounded as Redis rounds it.
func (s *Server) replyTTL(c redcon.Conn, key []byte, unit time.Duration) {
	left, never, ok, err := s.remaining(key)
	switch {
	case err != nil:
		c.WriteError(errorReply(err))
	case !ok:
		c.WriteInt(-2)
	case never:
		c.WriteInt(-1)
	default:
		c.WriteInt64(int64((left + unit/2) / unit))
	}
}

func (s *Server) ttl(c redcon.Conn, _ *client, args [][]byte) { s.replyTTL(c, args[1], time.Second) }

func (s *Server) pttl(c redcon.Conn, _ *client, args [][]byte) {
	s.replyTTL(c, args[1], time.Millisecond)
}

// expireRefused answers EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT and PERSIST:
// changing the expiry of a stored value means writing the value again,
// and a value read here may already be replaced on another machine.
func (s *Server) expireRefused(c redcon.Conn, _ *client, args [][]byte) {
	c.WriteError("ERR " + string(appendLower(nil, args[0])) + " is not supported: it would write back a value read from this machine's state over newer writes elsewhere; give the expiry with SET key value EX seconds")
}

// readModifyWriteRefused answers INCR, INCRBY, DECR, DECRBY, APPEND,
// GETSET and SETNX: each writes a value computed from (or conditional on)
// the one read here, which another machine may already have replaced.
func (s *Server) readModifyWriteRefused(c redcon.Conn, _ *client, args [][]byte) {
	c.WriteError("ERR " + string(appendLower(nil, args[0])) + " is not supported: it would write a value computed from this machine's state, which another machine may already have replaced; a whycache write is an unconditional SET")
}
