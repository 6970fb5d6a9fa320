package respserver

import (
	"errors"
	"time"

	"github.com/tidwall/redcon"
)

// errNoExpiry answers the commands that need expiry, which this build's
// Instance does not have.
const errNoExpiry = "ERR expiry not supported by this build"

// errExpiryUnsupported is the error of a SET with EX, PX, EXAT or PXAT.
var errExpiryUnsupported = errors.New("expiry not supported by this build")

func (s *Server) setWithTTL(key, value []byte, ttl time.Duration) error {
	return errExpiryUnsupported
}

func (s *Server) ttl(c redcon.Conn, _ *client, _ [][]byte) { c.WriteError(errNoExpiry) }

func (s *Server) pttl(c redcon.Conn, _ *client, _ [][]byte) { c.WriteError(errNoExpiry) }
