package proc

import (
	"bytes"
	"sync"
)

// tailBytes is how much of a child's stderr is kept.
const tailBytes = 4096

// tailBuffer keeps the last tailBytes written to it. It is safe for
// concurrent use (exec copies stderr from its own goroutine).
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if extra := t.buf.Len() - tailBytes; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
