package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// all is the widest id range; reading it must not overflow anywhere.
const all = math.MaxUint64

// stored is one record as read back from a store.
type stored struct {
	id       uint64
	contents []byte
}

// fixture is a fresh log and the means to open more handles on it.
type fixture struct {
	ctx  context.Context
	s    logstore.Store
	open func(t *testing.T) logstore.Store
}

// newFixture opens a fresh log through h and arranges for it to be closed.
func newFixture(t *testing.T, h Harness) *fixture {
	t.Helper()
	s, open := h.New(t)
	closeAtCleanup(t, s)
	return &fixture{ctx: context.Background(), s: s, open: open}
}

// handle opens another handle on the fixture's log, closed at cleanup.
func (f *fixture) handle(t *testing.T) logstore.Store {
	t.Helper()
	s := f.open(t)
	closeAtCleanup(t, s)
	return s
}

// closeAtCleanup closes s when the test ends; a store the test closed
// itself may report ErrClosed then.
func closeAtCleanup(t *testing.T, s logstore.Store) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, logstore.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
}

// contents returns a valid encoded record whose single item is named tag.
func contents(t *testing.T, tag string) []byte {
	t.Helper()
	b, err := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte(tag), Value: []byte("value of " + tag)}})
	if err != nil {
		t.Fatalf("AppendRecord(%q): %v", tag, err)
	}
	return b
}

// records returns n records tagged prefix-0 .. prefix-(n-1), without
// SingleKey.
func records(t *testing.T, prefix string, n int) []logstore.Record {
	t.Helper()
	out := make([]logstore.Record, n)
	for i := range out {
		out[i].Contents = contents(t, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// commit commits recs through s, checks that the returned id leaves room
// for consecutive ids after prev (the previous latest id), and returns the
// records as they must read back.
func commit(t *testing.T, s logstore.Store, prev uint64, recs ...logstore.Record) []stored {
	t.Helper()
	res, err := s.Commit(context.Background(), logstore.LogID{}, recs)
	if err != nil {
		t.Fatalf("Commit(%d records): %v", len(recs), err)
	}
	last := res.Last
	if res.First != last-uint64(len(recs))+1 {
		t.Fatalf("Commit(%d records) returned ids %d..%d", len(recs), res.First, res.Last)
	}
	n := uint64(len(recs))
	if last < n || last-n < prev {
		t.Fatalf("Commit(%d records) after id %d returned last id %d", len(recs), prev, last)
	}
	out := make([]stored, len(recs))
	for i, r := range recs {
		out[i] = stored{id: last - n + 1 + uint64(i), contents: r.Contents}
	}
	return out
}

// readAll returns the records ReadUpdates(low, high) delivers, checking
// that they come in ascending id order within the range.
func readAll(t *testing.T, s logstore.Store, low, high uint64) []stored {
	t.Helper()
	got, err := read(context.Background(), s, low, high)
	if err != nil {
		t.Fatalf("ReadUpdates(%d, %d): %v", low, high, err)
	}
	return got
}

// read is readAll for use off the test goroutine: it returns the problems
// it finds as errors.
func read(ctx context.Context, s logstore.Store, low, high uint64) ([]stored, error) {
	var out []stored
	err := s.ReadUpdates(ctx, low, high, func(id uint64, c []byte) error {
		if id < low || id > high {
			return fmt.Errorf("record %d delivered for range [%d, %d]", id, low, high)
		}
		if n := len(out); n > 0 && id <= out[n-1].id {
			return fmt.Errorf("record %d delivered after record %d", id, out[n-1].id)
		}
		out = append(out, stored{id: id, contents: bytes.Clone(c)})
		return nil
	})
	return out, err
}

// latest returns s.LatestUpdateID or fails the test.
func latest(t *testing.T, s logstore.Store) uint64 {
	t.Helper()
	id, err := s.LatestUpdateID(context.Background())
	if err != nil {
		t.Fatalf("LatestUpdateID: %v", err)
	}
	return id
}

// info returns s.Info or fails the test.
func info(t *testing.T, s logstore.Store) logstore.Info {
	t.Helper()
	in, err := s.Info(context.Background())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	return in
}

// expectRecords fails the test unless got equals want exactly.
func expectRecords(t *testing.T, what string, got, want []stored) {
	t.Helper()
	if err := diffRecords(got, want); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// diffRecords describes the first difference between two record lists.
func diffRecords(got, want []stored) error {
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return fmt.Errorf("record %d missing (got %d records, want %d)", want[i].id, len(got), len(want))
		case i >= len(want):
			return fmt.Errorf("unexpected record %d (got %d records, want %d)", got[i].id, len(got), len(want))
		case got[i].id != want[i].id:
			return fmt.Errorf("record #%d has id %d, want %d", i, got[i].id, want[i].id)
		case !bytes.Equal(got[i].contents, want[i].contents):
			return fmt.Errorf("record %d contents %q, want %q", got[i].id, short(got[i].contents), short(want[i].contents))
		}
	}
	return nil
}

// short abbreviates long contents in messages.
func short(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// filter returns the records of recs with low <= id <= high.
func filter(recs []stored, low, high uint64) []stored {
	var out []stored
	for _, r := range recs {
		if r.id >= low && r.id <= high {
			out = append(out, r)
		}
	}
	return out
}
