// Package tailbuf keeps the end of what a child process writes, for error
// messages.
package tailbuf

import (
	"bytes"
	"sync"
)

// DefaultMax is the number of bytes a Buffer with Max 0 keeps.
const DefaultMax = 4096

// Buffer is an io.Writer that keeps the last Max bytes written to it. It is
// safe for concurrent use (os/exec copies output from its own goroutine).
type Buffer struct {
	Max int // bytes kept; 0 means DefaultMax

	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

// Write appends p, dropping the oldest bytes beyond Max. It never fails.
func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	max := t.Max
	if max <= 0 {
		max = DefaultMax
	}
	t.buf.Write(p)
	if extra := t.buf.Len() - max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

// String returns the bytes kept.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
