package whycache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGetOrLoadSingleFlight: 64 goroutines missing one key call load
// once, all get its value, and the value is committed (another machine
// sees it with its ttl).
func TestGetOrLoadSingleFlight(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		a := newInstance(t, store, Options{})
		mustUpdate(t, a)
		var calls atomic.Int32
		release := make(chan struct{})
		load := func(context.Context) ([]byte, time.Duration, error) {
			calls.Add(1)
			<-release
			return []byte("loaded"), time.Hour, nil
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := a.GetOrLoad(ctx, []byte("k"), load)
				if err == nil && string(v) != "loaded" {
					err = fmt.Errorf("value %q", v)
				}
				errs <- err
			}()
		}
		time.Sleep(50 * time.Millisecond)
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("load called %d times", n)
		}
		b := newInstance(t, store, Options{})
		mustUpdate(t, b)
		if v, exp, err := b.GetWithExpiry([]byte("k")); err != nil || string(v) != "loaded" || exp.IsZero() {
			t.Fatalf("other machine: %q, %v, %v", v, exp, err)
		}
	})
}

// TestGetOrLoadErrorsAndPanics: a loader error is returned and not
// stored; a panic reaches its caller, waiters get ErrLoadPanicked, and the
// key loads again afterwards; a waiter's own context bounds its wait.
func TestGetOrLoadErrorsAndPanics(t *testing.T) {
	ctx := context.Background()
	a := newInstance(t, testStores()[0].newLog(t), Options{})
	mustUpdate(t, a)
	boom := errors.New("source down")
	if _, err := a.GetOrLoad(ctx, []byte("k"), func(context.Context) ([]byte, time.Duration, error) { return nil, 0, boom }); err != boom {
		t.Fatalf("loader error: %v", err)
	}
	wantErr(t, a, "k", ErrNotFound)

	started := make(chan struct{})
	waiterErr := make(chan error, 1)
	go func() {
		<-started
		_, err := a.GetOrLoad(ctx, []byte("k"), func(context.Context) ([]byte, time.Duration, error) {
			return nil, 0, errors.New("a waiter must not load")
		})
		waiterErr <- err
	}()
	shortCtx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	go func() {
		<-started
		_, err := a.GetOrLoad(shortCtx, []byte("k"), nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			waiterErr <- fmt.Errorf("waiter with a short context: %v", err)
		}
	}()
	func() {
		defer func() {
			if r := recover(); r != "bad loader" {
				t.Fatalf("recovered %v, want the loader's panic", r)
			}
		}()
		a.GetOrLoad(ctx, []byte("k"), func(context.Context) ([]byte, time.Duration, error) {
			close(started)
			time.Sleep(100 * time.Millisecond) // the waiters join, one times out
			panic("bad loader")
		})
	}()
	if err := <-waiterErr; !errors.Is(err, ErrLoadPanicked) {
		t.Fatalf("waiter of a panicked load: %v", err)
	}
	v, err := a.GetOrLoad(ctx, []byte("k"), func(context.Context) ([]byte, time.Duration, error) { return []byte("ok"), 0, nil })
	if err != nil || string(v) != "ok" {
		t.Fatalf("load after a panic: %q, %v", v, err)
	}
	if _, exp, err := a.GetWithExpiry([]byte("k")); err != nil || !exp.IsZero() {
		t.Fatalf("ttl 0 stored expiry %v, %v", exp, err)
	}
	if _, err := a.GetOrLoad(ctx, []byte("neg"), func(context.Context) ([]byte, time.Duration, error) { return []byte("x"), -1, nil }); !errors.Is(err, ErrBadTTL) {
		t.Fatalf("negative ttl: %v", err)
	}
}
