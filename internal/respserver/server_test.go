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
		srv, addr, done := startServing(t, inst, "")
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
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Fatalf("round %d: the listener still accepts after Close", i)
		}
	}
}
