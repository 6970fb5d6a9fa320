package respserver

import (
	"io"
	"net"

	"github.com/tidwall/redcon"
)

// replies is the redcon.Conn the command handlers write to: it appends
// their replies to out, in RESP, for the event loop (or a write's
// goroutine) to send once the commands of one read are done. It is used
// by one goroutine at a time: the connection's event loop, or the
// goroutine running the connection's writes while the loop waits for it
// (conn.busy).
type replies struct {
	cl     *client
	remote string
	out    []byte
	// closing is set by Close (QUIT): the connection is closed once out
	// is sent.
	closing bool
}

var _ redcon.Conn = (*replies)(nil)

// RemoteAddr returns the client's address.
func (r *replies) RemoteAddr() string { return r.remote }

// Close asks for the connection to be closed after the replies so far
// are sent.
func (r *replies) Close() error {
	r.closing = true
	return nil
}

func (r *replies) WriteError(msg string)       { r.out = redcon.AppendError(r.out, msg) }
func (r *replies) WriteString(str string)      { r.out = redcon.AppendString(r.out, str) }
func (r *replies) WriteBulk(bulk []byte)       { r.out = redcon.AppendBulk(r.out, bulk) }
func (r *replies) WriteBulkString(bulk string) { r.out = redcon.AppendBulkString(r.out, bulk) }
func (r *replies) WriteInt(num int)            { r.out = redcon.AppendInt(r.out, int64(num)) }
func (r *replies) WriteInt64(num int64)        { r.out = redcon.AppendInt(r.out, num) }
func (r *replies) WriteUint64(num uint64)      { r.out = redcon.AppendUint(r.out, num) }
func (r *replies) WriteArray(count int)        { r.out = redcon.AppendArray(r.out, count) }
func (r *replies) WriteNull()                  { r.out = redcon.AppendNull(r.out) }
func (r *replies) WriteRaw(data []byte)        { r.out = append(r.out, data...) }
func (r *replies) WriteAny(v any)              { r.out = redcon.AppendAny(r.out, v) }

// WriteBulkFrom writes a bulk reply of the n bytes read from rb; when rb
// holds fewer, the reply is an error instead.
func (r *replies) WriteBulkFrom(n int64, rb io.Reader) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rb, b); err != nil {
		r.WriteError("ERR " + err.Error())
		return
	}
	r.WriteBulk(b)
}

// Context returns the connection's *client.
func (r *replies) Context() any { return r.cl }

// SetContext sets the connection's client; v must be a *client.
func (r *replies) SetContext(v any) {
	if cl, ok := v.(*client); ok {
		r.cl = cl
	}
}

// SetReadBuffer does nothing: the event loop sizes its reads.
func (r *replies) SetReadBuffer(int) {}

// Detach is not supported: it returns nil. (No command detaches.)
func (r *replies) Detach() redcon.DetachedConn { return nil }

// ReadPipeline returns nil: the commands after the running one are not
// parsed yet (the event loop parses one at a time, and runPipeline is
// given its commands), and a handler that ends the connection (QUIT)
// stops them by setting client.quit.
func (r *replies) ReadPipeline() []redcon.Command { return nil }

// PeekPipeline returns nil, as ReadPipeline does.
func (r *replies) PeekPipeline() []redcon.Command { return nil }

// NetConn returns nil: the socket belongs to the event loop.
func (r *replies) NetConn() net.Conn { return nil }
