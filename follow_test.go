package whycache

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/memstore"
)

func TestFollowBackoff(t *testing.T) {
	const ms = time.Millisecond
	top := func(n int64) int64 { return n - 1 } // the largest value rnd may return
	zero := func(int64) int64 { return 0 }
	tests := []struct {
		name          string
		interval, max time.Duration
		failures      int
		rnd           func(int64) int64
		want          time.Duration
	}{
		{"first failure doubles", 100 * ms, time.Second, 1, top, 200 * ms},
		{"second failure", 100 * ms, time.Second, 2, top, 400 * ms},
		{"third failure", 100 * ms, time.Second, 3, top, 800 * ms},
		{"capped", 100 * ms, time.Second, 4, top, time.Second},
		{"many failures stay capped", 100 * ms, time.Second, 1000, top, time.Second},
		{"huge cap does not overflow", time.Second, time.Duration(1<<63 - 1), 200, top, time.Second << 33},
		{"jitter reaches zero", 100 * ms, time.Second, 3, zero, 0},
		{"half of the ceiling", 100 * ms, time.Second, 2, func(n int64) int64 { return n / 2 }, 200 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked int64
			got := followBackoff(tt.interval, tt.max, tt.failures, func(n int64) int64 {
				asked = n
				return tt.rnd(n)
			})
			if got != tt.want {
				t.Errorf("followBackoff = %v, want %v", got, tt.want)
			}
			if got < 0 || int64(got) >= asked {
				t.Errorf("wait %v outside [0, %v)", got, time.Duration(asked))
			}
		})
	}
}

// pollEvent is one OnPoll call.
type pollEvent struct {
	st  FollowStats
	err error
	at  time.Time
}

// follower runs Follow on an instance in a goroutine and reports its polls.
type follower struct {
	events chan pollEvent
	cancel context.CancelFunc
	done   chan struct{} // closed when Follow returned err
	err    error
}

// stop cancels the follower and returns Follow's result.
func (f *follower) stop() error {
	f.cancel()
	<-f.done
	return f.err
}

func startFollower(t *testing.T, c *Instance, opts FollowOptions) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{events: make(chan pollEvent, 64), cancel: cancel, done: make(chan struct{})}
	opts.OnPoll = func(st FollowStats, err error) {
		select {
		case f.events <- pollEvent{st, err, time.Now()}:
		case <-ctx.Done():
		}
	}
	go func() {
		defer close(f.done)
		f.err = c.Follow(ctx, opts)
	}()
	t.Cleanup(func() { f.stop() })
	return f
}

// next returns the follower's next poll event, failing the test after a
// generous timeout.
func (f *follower) next(t *testing.T) pollEvent {
	t.Helper()
	select {
	case ev := <-f.events:
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no poll event in 30s")
		return pollEvent{}
	}
}

// newMemStore returns an in-memory log, closed at cleanup.
func newMemStore(t *testing.T) *memstore.Store {
	t.Helper()
	s, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
}

func TestFollowOneLeaderAndTakeover(t *testing.T) {
	store := newMemStore(t)
	writer := newInstance(t, store, Options{}) // another machine
	mustUpdate(t, writer)
	first := mustSet(t, writer, "a", "1")

	state := filepath.Join(t.TempDir(), "state")
	a := newInstance(t, store, Options{StatePath: state})
	b := newInstance(t, store, Options{StatePath: state})
	const interval = 500 * time.Millisecond // long enough that a loaded machine's scheduling noise stays well inside two intervals
	opts := FollowOptions{Interval: interval, Logger: quietLogger()}
	fa := startFollower(t, a, opts)
	evA := fa.next(t)
	if !evA.st.Leader || evA.err != nil {
		t.Fatalf("first follower: leader %v, err %v; want the leader", evA.st.Leader, evA.err)
	}
	if evA.st.UpdateID != first || evA.st.LatestID != first || evA.st.Applied != 1 || evA.st.Keys != 1 {
		t.Fatalf("leader's first poll: %+v, want update id = latest = %d, 1 record applied, 1 key", evA.st, first)
	}
	fb := startFollower(t, b, opts)

	// While a leads, b stands by and sees a's updates in the shared state.
	second := mustSet(t, writer, "b", "2")
	for {
		ev := fb.next(t)
		if ev.st.Leader {
			t.Fatal("second follower became leader while the first runs")
		}
		if ev.st.UpdateID == second {
			if ev.st.LatestID != 0 || ev.st.Keys != 2 {
				t.Fatalf("standby stats %+v: want latest id 0 (not asked) and 2 keys", ev.st)
			}
			break
		}
	}
	for range 3 {
		if ev := fa.next(t); !ev.st.Leader {
			t.Fatal("first follower lost the lead")
		}
	}

	// The leader stops; the standby takes over within two intervals and
	// polls from then on.
	third := mustSet(t, writer, "c", "3")
	if err := fa.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v, want context.Canceled", err)
	}
	stopped := time.Now()
	for {
		ev := fb.next(t)
		if !ev.st.Leader {
			continue
		}
		if took := ev.at.Sub(stopped); took > 2*interval {
			t.Errorf("standby took over %v after the leader stopped, want <= %v", took, 2*interval)
		}
		if ev.err != nil || ev.st.UpdateID != third || ev.st.LatestID != third || ev.st.Keys != 3 {
			t.Fatalf("new leader's first poll: %+v, err %v; want update id = latest = %d and 3 keys", ev.st, ev.err, third)
		}
		break
	}
	fourth := mustSet(t, writer, "d", "4")
	for {
		ev := fb.next(t)
		if !ev.st.Leader || ev.err != nil {
			t.Fatalf("new leader: leader %v, err %v", ev.st.Leader, ev.err)
		}
		if ev.st.Applied > 0 {
			if ev.st.UpdateID != fourth || ev.st.Applied != 1 {
				t.Fatalf("new leader applied %d records up to %d, want 1 up to %d", ev.st.Applied, ev.st.UpdateID, fourth)
			}
			break
		}
	}
	wantValue(t, b, "d", []byte("4"))
}

// flakyStore is a store whose reads fail while fail is set.
type flakyStore struct {
	logstore.Store
	fail atomic.Bool
}

var errFlaky = errors.New("injected store failure")

func (s *flakyStore) LatestUpdateID(ctx context.Context) (uint64, error) {
	if s.fail.Load() {
		return 0, errFlaky
	}
	return s.Store.LatestUpdateID(ctx)
}

func (s *flakyStore) Poll(ctx context.Context, req logstore.PollRequest, fn func(logstore.Entry) error) (logstore.PollResult, error) {
	if s.fail.Load() {
		return logstore.PollResult{}, errFlaky
	}
	return s.Store.Poll(ctx, req, fn)
}

func (s *flakyStore) Info(ctx context.Context) (logstore.Info, error) {
	if s.fail.Load() {
		return logstore.Info{}, errFlaky
	}
	return s.Store.Info(ctx)
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFollowBacksOffOnErrors(t *testing.T) {
	mem := newMemStore(t)
	store := &flakyStore{Store: mem}
	c := newInstance(t, store, Options{})
	id := mustSet(t, c, "k", "v")
	store.fail.Store(true)

	const interval, maxBackoff = 20 * time.Millisecond, 160 * time.Millisecond
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	f := startFollower(t, c, FollowOptions{Interval: interval, MaxBackoff: maxBackoff, Logger: logger})
	prev := f.next(t)
	for i := 1; ; i++ {
		if !errors.Is(prev.err, errFlaky) || prev.st.Failures != i {
			t.Fatalf("poll %d: err %v, failures %d; want the injected error and %d failures", i, prev.err, prev.st.Failures, i)
		}
		ceiling := min(interval<<i, maxBackoff)
		if prev.st.Wait < 0 || prev.st.Wait > ceiling {
			t.Fatalf("poll %d: wait %v outside [0, %v]", i, prev.st.Wait, ceiling)
		}
		if i == 6 {
			break
		}
		ev := f.next(t)
		if gap := ev.at.Sub(prev.at); gap < prev.st.Wait {
			t.Fatalf("poll %d came %v after the previous one, which announced a wait of %v", i+1, gap, prev.st.Wait)
		}
		prev = ev
	}
	store.fail.Store(false)
	for {
		ev := f.next(t)
		if ev.err != nil {
			continue // a poll that started before the store recovered
		}
		if ev.st.Failures != 0 || ev.st.Wait < interval*9/10 || ev.st.Wait > interval*11/10 || ev.st.UpdateID != id || !ev.st.Valid {
			t.Fatalf("poll after recovery: %+v; want no failures, wait %v ±10%%, update id %d, valid", ev.st, interval, id)
		}
		break
	}
	out := logs.String()
	for _, want := range []string{"poll failed", "failures=6", "injected store failure", "poll succeeded again", "after_failures="} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

func TestFollowReleasesLockOnCancel(t *testing.T) {
	store := newMemStore(t)
	c := newInstance(t, store, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Follow(ctx, FollowOptions{Interval: 10 * time.Millisecond, Logger: quietLogger()}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Follow = %v, want context.DeadlineExceeded", err)
	}
	if !c.Valid() {
		t.Error("the leader never filled the state")
	}
	lock, err := c.openFollowLock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.close()
	if held, err := lock.tryLock(); !held || err != nil {
		t.Fatalf("lock after Follow returned: held %v, err %v; want it free", held, err)
	}
}

func TestFollowLockFileError(t *testing.T) {
	store := newMemStore(t)
	// The state's directory is a regular file: the lock cannot be created.
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Open(store, Options{StatePath: filepath.Join(notDir, "state")}); err == nil {
		c.Close()
		t.Fatal("Open of a state whose directory is a regular file succeeded")
	}
	// A symbolic link planted at the lock's name is refused, not followed.
	c := newInstance(t, store, Options{})
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(target, c.StatePath()+".follow"); err != nil {
		t.Fatal(err)
	}
	err := c.Follow(context.Background(), FollowOptions{Logger: quietLogger()})
	if !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Follow with a symbolic link as its lock = %v, want ErrUnsafe", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Follow created a file through the symbolic link: %v", err)
	}
}
