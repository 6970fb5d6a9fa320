package tailbuf

import (
	"strings"
	"testing"
)

func TestBufferKeepsTheEnd(t *testing.T) {
	b := &Buffer{Max: 8}
	b.Write([]byte("hello "))
	b.Write([]byte("world!"))
	if got := b.String(); got != "o world!" {
		t.Fatalf("kept %q, want %q", got, "o world!")
	}
	var d Buffer
	d.Write([]byte(strings.Repeat("x", DefaultMax+10)))
	if len(d.String()) != DefaultMax {
		t.Fatalf("kept %d bytes, want %d", len(d.String()), DefaultMax)
	}
}
