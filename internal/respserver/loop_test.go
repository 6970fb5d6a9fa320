package respserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/redcon"
	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/memstore"
)

// TestBadRequestsAnsweredAndClosed sends requests redcon's parser refuses,
// or panics on (a negative bulk length inside a multibulk request): each
// gets a protocol error and its connection is closed, the server stays up
// for the next client, and requests split across reads still parse.
func TestBadRequestsAnsweredAndClosed(t *testing.T) {
	addr, _ := startServer(t, "")
	for _, raw := range []string{
		"*1\r\n$-2\r\n",
		"*2\r\n$3\r\nGET\r\n$-5\r\nxx\r\n",
		"*1\r\nGET\r\n",
		"*x\r\n",
	} {
		rc := dialRaw(t, addr)
		rc.send(raw)
		got, err := readReply(rc.r)
		if err != nil || !strings.HasPrefix(got, "-ERR Protocol error") {
			t.Errorf("%q: reply %q, %v; want a protocol error", raw, got, err)
		}
		if more, err := readReply(rc.r); err == nil {
			t.Errorf("%q: connection still open after the error (read %q)", raw, more)
		}
	}
	rc := dialRaw(t, addr)
	if got := rc.do("SET", "k", "v"); got != "OK" {
		t.Fatalf("SET after the bad requests: %s", got)
	}
	req := encode("GET", "k") + encode("PING")
	for i := 1; i < len(req); i++ { // every split point of a pipeline of two
		rc.send(req[:i])
		rc.send(req[i:])
		if got := rc.read(); got != `"v"` {
			t.Fatalf("split at %d: GET reply %s", i, got)
		}
		if got := rc.read(); got != "PONG" {
			t.Fatalf("split at %d: PING reply %s", i, got)
		}
	}
}

// TestPipelineOrderAroundWrites pipelines reads and writes in one send:
// the replies come in order and every read sees the writes before it on
// the same connection (the writes run on a goroutine while the event loop
// keeps the rest of the input).
func TestPipelineOrderAroundWrites(t *testing.T) {
	addr, _ := startServer(t, "")
	rc := dialRaw(t, addr)
	var req strings.Builder
	var want []string
	for i := range 50 {
		v := strings.Repeat("v", i)
		req.WriteString(encode("SET", "k", v))
		req.WriteString(encode("GET", "k"))
		req.WriteString(encode("SET", "k2", v))
		req.WriteString(encode("SET", "k3", v))
		req.WriteString(encode("MGET", "k2", "k3"))
		want = append(want, "OK", `"`+v+`"`, "OK", "OK", `["`+v+`" "`+v+`"]`)
	}
	rc.send(req.String())
	for i, w := range want {
		if got := rc.read(); got != w {
			t.Fatalf("reply %d: %s, want %s", i, got, w)
		}
	}
	if got := rc.do("QUIT"); got != "OK" {
		t.Fatalf("QUIT: %s", got)
	}
}

// FuzzParseCommand checks parseCommand on any input: it never panics, a
// complete command's leftover is a suffix of the input, and a complete
// multibulk command encodes back to the bytes it was parsed from.
func FuzzParseCommand(f *testing.F) {
	for _, seed := range []string{
		encode("GET", "k"), encode("SET", "k", "v") + encode("PING"), "*1\r\n$-2\r\n",
		"*2\r\n$3\r\nGET\r\n$-5\r\nxx\r\n", "PING\r\n", "*0\r\n", "*1\r\n$3\r\nGE",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, packet []byte) {
		complete, args, leftover, err := parseCommand(packet, nil)
		if err != nil || !complete {
			return
		}
		if len(leftover) > len(packet) || !bytes.Equal(packet[len(packet)-len(leftover):], leftover) {
			t.Fatalf("leftover %q is not a suffix of %q", leftover, packet)
		}
		if len(packet) == 0 || packet[0] != '*' || len(args) == 0 {
			return
		}
		used := packet[:len(packet)-len(leftover)]
		var enc []byte
		enc = redcon.AppendArray(enc, len(args))
		for _, a := range args {
			enc = redcon.AppendBulk(enc, a)
		}
		if !bytes.Equal(enc, used) {
			t.Fatalf("%q parsed to %q, which encodes to %q", used, args, enc)
		}
	})
}

// TestClientsLeaveDuringWrites closes clients while their pipelined SETs
// are committing, then closes the server while others are: nothing
// panics or hangs, and a new connection to a new server on the same
// instance reads what the finished writes committed.
func TestClientsLeaveDuringWrites(t *testing.T) {
	_, inst := startServer(t, "")
	srv, addr, done := startServing(t, inst, "")
	var req strings.Builder
	for i := range 200 {
		req.WriteString(encode("SET", fmt.Sprint("k", i), "v"))
	}
	for i := range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(req.String())); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			c.Close() // before the replies
		} else {
			defer c.Close()
		}
	}
	time.Sleep(20 * time.Millisecond)
	srv.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	rc := dialRaw(t, serveInstance(t, inst, ""))
	if got := rc.do("SET", "after", "yes"); got != "OK" {
		t.Fatalf("SET on a new server: %s", got)
	}
	if got := rc.do("GET", "after"); got != `"yes"` {
		t.Fatalf("GET on a new server: %s", got)
	}
}

// TestCloseWhileEnrolling closes the server between the accept of a
// connection and its hand-over to an event loop: Serve and Close return,
// and the connection is closed. (gnet's enrolment waits without end for
// a loop that was stopped.)
func TestCloseWhileEnrolling(t *testing.T) {
	_, inst := startServer(t, "")
	srv, err := New(Config{Instance: inst})
	if err != nil {
		t.Fatal(err)
	}
	accepted, release := make(chan struct{}), make(chan struct{})
	srv.testHookEnroll = func() {
		close(accepted)
		<-release
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-accepted
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	time.Sleep(100 * time.Millisecond) // Close stops the loops meanwhile
	close(release)
	for name, ch := range map[string]chan error{"Close": closed, "Serve": done} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return within 10 s of a Close during an enrolment", name)
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("the connection enrolled after Close was served (read %d bytes)", n)
	}
}

// TestAuthAfterOffloadedWrite sends a SET and an AUTH in one write: both
// run on the write's goroutine while the event loop looks at the
// connection (under -race this once reported the loop reading the
// client's authentication while AUTH set it).
func TestAuthAfterOffloadedWrite(t *testing.T) {
	addr, _ := startServer(t, "pw")
	rc := dialRaw(t, addr)
	if got := rc.do("AUTH", "pw"); got != "OK" {
		t.Fatalf("AUTH: %s", got)
	}
	for range 20 {
		rc.send(encode("SET", "k", "v") + encode("AUTH", "pw") + encode("GET", "k"))
		for i, want := range []string{"OK", "OK", `"v"`} {
			if got := rc.read(); got != want {
				t.Fatalf("reply %d: %s, want %s", i, got, want)
			}
		}
	}
}

// TestParseCommandAllocates: parsing a command in place, with the
// connection's reused argument slice, allocates nothing (README).
func TestParseCommandAllocates(t *testing.T) {
	packet := []byte(encode("GET", "some:key") + encode("MGET", "a", "b", "c"))
	args := make([][]byte, 0, 8)
	allocs := testing.AllocsPerRun(1000, func() {
		rest := packet
		for len(rest) > 0 {
			complete, a, leftover, err := parseCommand(rest, args[:0])
			if err != nil || !complete {
				t.Fatalf("parse: %v, complete %v", err, complete)
			}
			args, rest = a, leftover
		}
	})
	if allocs != 0 {
		t.Errorf("parsing two commands allocated %.1f times, want 0", allocs)
	}
}

// blockingStore is a memstore whose commits wait until release is closed.
type blockingStore struct {
	*memstore.Store
	entered chan struct{} // receives once per commit that waits
	release chan struct{}
}

func (s *blockingStore) Commit(ctx context.Context, expect logstore.LogID, records []logstore.Record) (logstore.Committed, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.Store.Commit(ctx, expect, records)
}

// TestWriteLeavesLoopFree: while one connection's SET waits for its
// commit, the server's one event loop (as serve's default --procs 1 has)
// answers the other connection's PINGs and GETs; the SET's reply comes
// once it committed.
func TestWriteLeavesLoopFree(t *testing.T) {
	mem, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &blockingStore{Store: mem, entered: make(chan struct{}, 1), release: make(chan struct{})}
	inst, err := whycache.Open(store, whycache.Options{StatePath: filepath.Join(t.TempDir(), "s.state")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	if err := inst.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(1) // New starts as many loops
	addr := serveInstance(t, inst, "")
	runtime.GOMAXPROCS(procs)
	var once sync.Once
	release := func() { once.Do(func() { close(store.release) }) }
	t.Cleanup(release) // before the server's Close, which waits for the SET
	writer, reader := dialRaw(t, addr), dialRaw(t, addr)
	writer.send(encode("SET", "k", "v"))
	select {
	case <-store.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the SET did not reach the store")
	}
	for range 3 {
		if got := reader.do("PING"); got != "PONG" {
			t.Fatalf("PING during a waiting SET: %s", got)
		}
		if got := reader.do("GET", "k"); got != "(nil)" {
			t.Fatalf("GET during a waiting SET: %s", got)
		}
	}
	release()
	if got := writer.read(); got != "OK" {
		t.Fatalf("SET: %s", got)
	}
	if got := reader.do("GET", "k"); got != `"v"` {
		t.Fatalf("GET after the SET: %s", got)
	}
}
