package proc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// Conn is the child's side of the conversation: Recv reads the parent's
// JSON lines from stdin, Send writes JSON lines to stdout. It is meant
// for one goroutine, except that Send may be called from several (each
// line is written with one Write).
type Conn struct {
	in  *bufio.Scanner
	out io.Writer
}

// NewConn returns a Conn over the child's stdin and stdout.
func NewConn(stdin io.Reader, stdout io.Writer) *Conn {
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return &Conn{in: in, out: stdout}
}

// Send writes v as one JSON line.
func (c *Conn) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("proc: %w", err)
	}
	if _, err := c.out.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("proc: write to parent: %w", err)
	}
	return nil
}

// Recv reads the next JSON line into v. It returns io.EOF when the parent
// closed stdin (the signal to end).
func (c *Conn) Recv(v any) error {
	if !c.in.Scan() {
		if err := c.in.Err(); err != nil {
			return fmt.Errorf("proc: read from parent: %w", err)
		}
		return io.EOF
	}
	if err := json.Unmarshal(c.in.Bytes(), v); err != nil {
		return fmt.Errorf("proc: parent sent %.200q: %w", c.in.Text(), err)
	}
	return nil
}
