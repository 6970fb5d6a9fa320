package whycache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore"
)

// chanNotifier is a Notifier within one process: every subscriber gets
// every announcement it has room for.
type chanNotifier struct {
	mu   sync.Mutex // guards subs
	subs []chan uint64
	sent atomic.Int64
}

func (n *chanNotifier) Publish(_ context.Context, id uint64) error {
	n.sent.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.subs {
		select {
		case ch <- id:
		default:
		}
	}
	return nil
}

func (n *chanNotifier) Subscribe(ctx context.Context) (<-chan uint64, error) {
	ch := make(chan uint64, 16)
	n.mu.Lock()
	n.subs = append(n.subs, ch)
	n.mu.Unlock()
	go func() {
		<-ctx.Done()
		n.mu.Lock()
		defer n.mu.Unlock()
		for i, c := range n.subs {
			if c == ch {
				n.subs = append(n.subs[:i], n.subs[i+1:]...)
				break
			}
		}
		close(ch)
	}()
	return ch, nil
}

// TestFollowWakesOnNotification: with a poll interval of a minute, a write
// of another machine reaches this machine's state as soon as it is
// announced.
func TestFollowWakesOnNotification(t *testing.T) {
	store := newMemStore(t)
	n := &chanNotifier{}
	a := newInstance(t, store, Options{Notifier: n})
	b := newInstance(t, store, Options{Notifier: n})
	mustUpdate(t, a)
	mustUpdate(t, b)
	startFollower(t, a, FollowOptions{Interval: time.Minute, Logger: quietLogger()})
	time.Sleep(10 * time.Millisecond) // let the leader subscribe
	start := time.Now()
	mustSet(t, b, "k", "v")
	for {
		if _, err := a.Get([]byte("k")); err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the announced write did not reach the follower's state in 10 s (interval 1 minute)")
		}
		time.Sleep(time.Millisecond)
	}
	if n.sent.Load() == 0 {
		t.Fatal("the write was not announced")
	}
}

// countingStore counts the calls a follower makes to its log.
type countingStore struct {
	logstore.Store
	calls, polls atomic.Int64
}

func (s *countingStore) LatestUpdateID(ctx context.Context) (uint64, error) {
	s.calls.Add(1)
	return s.Store.LatestUpdateID(ctx)
}

func (s *countingStore) Info(ctx context.Context) (logstore.Info, error) {
	s.calls.Add(1)
	return s.Store.Info(ctx)
}

func (s *countingStore) ReadUpdates(ctx context.Context, low, high uint64, fn func(uint64, []byte) error) error {
	s.calls.Add(1)
	return s.Store.ReadUpdates(ctx, low, high, fn)
}

func (s *countingStore) Poll(ctx context.Context, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	s.calls.Add(1)
	s.polls.Add(1)
	return s.Store.Poll(ctx, req, fn)
}

// TestFollowOneCallPerPoll: an idle follower's poll costs its log one call
// (Poll), and the figures of its stats come from that call.
func TestFollowOneCallPerPoll(t *testing.T) {
	store := &countingStore{Store: newMemStore(t)}
	c := newInstance(t, store, Options{})
	mustUpdate(t, c)
	mustSet(t, c, "k", "v")
	store.calls.Store(0)
	store.polls.Store(0)
	f := startFollower(t, c, FollowOptions{Interval: 10 * time.Millisecond, Logger: quietLogger()})
	var last pollEvent
	for i := 0; i < 20; i++ {
		last = f.next(t)
		if last.err != nil {
			t.Fatal(last.err)
		}
	}
	f.cancel()
	<-f.done
	if calls, polls := store.calls.Load(), store.polls.Load(); calls != polls || polls < 20 || polls > 21 {
		t.Fatalf("20 polls of the follower made %d calls to the log, %d of them Poll; want one Poll each", calls, polls)
	}
	if last.st.LatestID == 0 || last.st.LatestID != last.st.UpdateID {
		t.Fatalf("the follower's stats lack the log's latest id: %+v", last.st)
	}
}

func TestJittered(t *testing.T) {
	for _, r := range []int64{0, 1, 1 << 40} {
		d := jittered(time.Second, func(n int64) int64 { return min(r, n-1) })
		if d < 900*time.Millisecond || d > 1100*time.Millisecond {
			t.Errorf("jittered(1s) = %v outside ±10%%", d)
		}
	}
}
