package redisnotify

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/whycache/whycache/internal/redistest"
)

func TestPublishReachesSubscribers(t *testing.T) {
	addr := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subs []<-chan uint64
	for i := 0; i < 3; i++ {
		n, err := New(Options{Addr: addr, Channel: "test"})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		ch, err := n.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, ch)
	}
	pub, _ := New(Options{Addr: addr, Channel: "test"})
	defer pub.Close()
	other, _ := New(Options{Addr: addr, Channel: "another log"})
	defer other.Close()
	if err := other.Publish(ctx, 99); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, 42); err != nil {
		t.Fatal(err)
	}
	for i, ch := range subs {
		select {
		case id := <-ch:
			if id != 42 {
				t.Errorf("subscriber %d got %d, want 42 (and nothing of another channel)", i, id)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("subscriber %d got nothing in 5 s", i)
		}
	}
	cancel()
	for i, ch := range subs {
		for range ch {
		}
		t.Logf("subscriber %d's channel closed", i)
	}
}

func TestPublishFailsFastWithoutServer(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	n, _ := New(Options{Addr: addr, PublishTimeout: 100 * time.Millisecond})
	defer n.Close()
	start := time.Now()
	if err := n.Publish(context.Background(), 1); err == nil {
		t.Fatal("Publish to no server succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Publish to no server took %v", took)
	}
}
