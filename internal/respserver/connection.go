package respserver

import (
	"crypto/subtle"
	"strconv"

	"github.com/tidwall/redcon"
)

// Version is the Redis version the server reports (HELLO, INFO): the
// commands it answers behave as in this version.
const Version = "7.0.0"

// ping answers before AUTH too, so that health checks need no password.
func (s *Server) ping(c redcon.Conn, _ *client, args [][]byte) {
	switch {
	case len(args) > 2:
		c.WriteError("ERR wrong number of arguments for 'ping' command")
	case len(args) == 2:
		c.WriteBulk(args[1])
	default:
		c.WriteString("PONG")
	}
}

func (s *Server) echo(c redcon.Conn, _ *client, args [][]byte) { c.WriteBulk(args[1]) }

func (s *Server) quit(c redcon.Conn, cl *client, _ [][]byte) {
	cl.quit = true
	c.WriteString("OK")
	c.ReadPipeline() // commands after QUIT are not run
	c.Close()
}

func (s *Server) selectDB(c redcon.Conn, _ *client, args [][]byte) {
	n, err := strconv.Atoi(string(args[1]))
	switch {
	case err != nil:
		c.WriteError(errNotInt)
	case n != 0:
		c.WriteError("ERR DB index is out of range")
	default:
		c.WriteString("OK")
	}
}

// checkPassword reports whether user and pass are the configured
// credentials ("default" is the only user).
func (s *Server) checkPassword(user, pass []byte) bool {
	userOK := subtle.ConstantTimeCompare(user, []byte("default"))
	passOK := subtle.ConstantTimeCompare(pass, []byte(s.password))
	return userOK&passOK == 1
}

func (s *Server) auth(c redcon.Conn, cl *client, args [][]byte) {
	if len(args) > 3 {
		c.WriteError(errSyntax)
		return
	}
	if s.password == "" {
		c.WriteError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	user, pass := []byte("default"), args[1]
	if len(args) == 3 {
		user, pass = args[1], args[2]
	}
	if !s.checkPassword(user, pass) {
		c.WriteError(errWrongPass)
		return
	}
	cl.authed = true
	c.WriteString("OK")
}

// hello answers HELLO [protover [AUTH user pass] [SETNAME name]]. Only
// RESP2 is spoken: HELLO 3 is refused with NOPROTO, which clients take as
// the signal to stay on RESP2.
func (s *Server) hello(c redcon.Conn, cl *client, args [][]byte) {
	if len(args) >= 2 {
		v, err := strconv.Atoi(string(args[1]))
		if err != nil {
			c.WriteError("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			c.WriteError("NOPROTO unsupported protocol version")
			return
		}
	}
	name, setName := "", false
	for i := 2; i < len(args); i++ {
		switch opt := string(appendLower(nil, args[i])); {
		case opt == "auth" && i+2 < len(args):
			if s.password == "" {
				c.WriteError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
				return
			}
			if !s.checkPassword(args[i+1], args[i+2]) {
				c.WriteError(errWrongPass)
				return
			}
			cl.authed = true
			i += 2
		case opt == "setname" && i+1 < len(args):
			if !validClientName(args[i+1]) {
				c.WriteError(errClientName)
				return
			}
			name, setName = string(args[i+1]), true
			i++
		default:
			c.WriteError("ERR Syntax error in HELLO option '" + clip(args[i]) + "'")
			return
		}
	}
	if !cl.authed {
		c.WriteError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if setName {
		cl.name = name
	}
	c.WriteArray(14)
	c.WriteBulkString("server")
	c.WriteBulkString("redis")
	c.WriteBulkString("version")
	c.WriteBulkString(Version)
	c.WriteBulkString("proto")
	c.WriteInt(2)
	c.WriteBulkString("id")
	c.WriteUint64(cl.id)
	c.WriteBulkString("mode")
	c.WriteBulkString("standalone")
	c.WriteBulkString("role")
	c.WriteBulkString("master")
	c.WriteBulkString("modules")
	c.WriteArray(0)
}

const errClientName = "ERR Client names cannot contain spaces, newlines or special characters."

// validClientName applies Redis's rule: printable ASCII without spaces.
func validClientName(b []byte) bool {
	for _, c := range b {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

func (s *Server) clientCmd(c redcon.Conn, cl *client, args [][]byte) {
	sub := string(appendLower(nil, args[1]))
	switch {
	case sub == "setname" && len(args) == 3:
		if !validClientName(args[2]) {
			c.WriteError(errClientName)
			return
		}
		cl.name = string(args[2])
		c.WriteString("OK")
	case sub == "getname" && len(args) == 2:
		if cl.name == "" {
			c.WriteNull()
			return
		}
		c.WriteBulkString(cl.name)
	case sub == "id" && len(args) == 2:
		c.WriteUint64(cl.id)
	case sub == "setinfo" && len(args) == 4:
		c.WriteString("OK") // library name and version: accepted, not kept
	case sub == "setname" || sub == "getname" || sub == "id" || sub == "setinfo":
		c.WriteError("ERR wrong number of arguments for 'client|" + sub + "' command")
	default:
		c.WriteError("ERR unknown subcommand '" + clip(args[1]) + "'. Try CLIENT HELP.")
	}
}
