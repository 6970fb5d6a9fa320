package respserver

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestCloseStopsServe closes the server at any point around Serve's
// start: Serve always returns (nil, or ErrClosed when Close came first),
// and its listener is closed.
func TestCloseStopsServe(t *testing.T) {
	_, inst := startServer(t, "")
	for i := range 50 {
		srv, err := New(Config{Instance: inst})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		if i%2 == 1 {
			time.Sleep(time.Duration(i) * 20 * time.Microsecond)
		}
		srv.Close()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Serve did not return after Close", i)
		}
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
			t.Fatalf("round %d: the listener still accepts after Close", i)
		}
	}
}
