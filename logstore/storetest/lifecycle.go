package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// call is one Store method call made by the lifecycle tests; calledBack
// reports whether it invoked its callback.
type call struct {
	name string
	do   func(ctx context.Context, s logstore.Store, calledBack *bool) error
}

// calls returns one call of every Store method that takes a context, with
// arguments that would change the log (or call back) if the call went
// through.
func calls(t *testing.T) []call {
	rec := []logstore.Record{{Contents: contents(t, "must not be committed")}}
	back := func(flag *bool) func(uint64, []byte) error {
		return func(uint64, []byte) error { *flag = true; return nil }
	}
	return []call{
		{"LatestUpdateID", func(ctx context.Context, s logstore.Store, _ *bool) error {
			_, err := s.LatestUpdateID(ctx)
			return err
		}},
		{"ReadUpdates", func(ctx context.Context, s logstore.Store, cb *bool) error {
			return s.ReadUpdates(ctx, 0, all, back(cb))
		}},
		{"Commit", func(ctx context.Context, s logstore.Store, _ *bool) error {
			_, err := s.Commit(ctx, logstore.LogID{}, rec)
			return err
		}},
		{"Info", func(ctx context.Context, s logstore.Store, _ *bool) error {
			_, err := s.Info(ctx)
			return err
		}},
		{"Compact", func(ctx context.Context, s logstore.Store, cb *bool) error {
			_, err := s.Compact(ctx, all, all, func(uint64, []byte) ([]byte, bool, error) {
				*cb = true
				return nil, false, nil
			})
			return err
		}},
		{"Reset", func(ctx context.Context, s logstore.Store, _ *bool) error {
			return s.Reset(ctx)
		}},
	}
}

// testCanceledContext checks that every method called with a cancelled
// context fails with context.Canceled and changes nothing.
func testCanceledContext(t *testing.T, h Harness) {
	f := newFixture(t, h)
	want := commit(t, f.s, 0, records(t, "c", 2)...)
	before := info(t, f.s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range calls(t) {
		calledBack := false
		if err := c.do(ctx, f.s, &calledBack); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context returned %v, want context.Canceled", c.name, err)
		}
		if calledBack {
			t.Errorf("%s with a cancelled context called its callback", c.name)
		}
	}
	expectRecords(t, "log after cancelled calls", readAll(t, f.s, 0, all), want)
	if got := info(t, f.s); got != before {
		t.Errorf("Info = %+v after cancelled calls, want %+v", got, before)
	}
	if got := latest(t, f.s); got != want[len(want)-1].id {
		t.Errorf("LatestUpdateID = %d after cancelled calls, want %d", got, want[len(want)-1].id)
	}
}

// testClose checks that every method of a closed handle, Close included,
// returns ErrClosed, and that other handles on the log stay usable.
func testClose(t *testing.T, h Harness) {
	f := newFixture(t, h)
	other := f.handle(t)
	want := commit(t, f.s, 0, records(t, "c", 2)...)
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range calls(t) {
		calledBack := false
		if err := c.do(context.Background(), f.s, &calledBack); !errors.Is(err, logstore.ErrClosed) {
			t.Errorf("%s after Close returned %v, want ErrClosed", c.name, err)
		}
		if calledBack {
			t.Errorf("%s after Close called its callback", c.name)
		}
	}
	if err := f.s.Close(); !errors.Is(err, logstore.ErrClosed) {
		t.Errorf("second Close returned %v, want ErrClosed", err)
	}
	want = append(want, commit(t, other, want[1].id, records(t, "d", 1)...)...)
	expectRecords(t, "log through another handle after Close", readAll(t, other, 0, all), want)
}
