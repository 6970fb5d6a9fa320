package memstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/memstore"
	"github.com/whycache/whycache/logstore/storetest"
)

// harness returns a storetest.Harness on memstore logs created with opts;
// every handle's invariants are checked when the test ends.
func harness(opts memstore.Options) storetest.Harness {
	return storetest.Harness{
		New: func(t *testing.T) (logstore.Store, func(*testing.T) logstore.Store) {
			s, err := memstore.New(opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() {
				if err := s.Check(); err != nil {
					t.Error(err)
				}
			})
			return s, func(*testing.T) logstore.Store { return s.Open() }
		},
		SingleKeyReplaces: opts.SingleKeyReplaces,
		Backup: func(t *testing.T, s logstore.Store) func(*testing.T) {
			b := s.(*memstore.Store).Backup()
			return func(*testing.T) { s.(*memstore.Store).Restore(b) }
		},
	}
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts memstore.Options
	}{
		{"AppendOnly", memstore.Options{}},
		{"SingleKeyReplaces", memstore.Options{SingleKeyReplaces: true}},
		{"SmallLimits", memstore.Options{
			Limits:            logstore.Limits{MaxRecordSize: 4096, MaxSingleKeySize: 8},
			SingleKeyReplaces: true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { storetest.Run(t, harness(tc.opts)) })
	}
}

// TestTombstonesPurged drives enough single-key replacements and
// compaction drops through the log to purge tombstones repeatedly, checking
// the invariants and the visible log against a model.
func TestTombstonesPurged(t *testing.T) {
	ctx := context.Background()
	s, err := memstore.New(memstore.Options{SingleKeyReplaces: true})
	if err != nil {
		t.Fatal(err)
	}
	newest := make(map[string]uint64) // key -> id of its newest record
	for i := 0; i < 1000; i++ {
		key := fmt.Sprintf("k%d", i%10)
		res, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: []byte(fmt.Sprintf("%s=%d", key, i)), SingleKey: []byte(key)}})
		if err != nil {
			t.Fatal(err)
		}
		newest[key] = res.Last
		if err := s.Check(); err != nil {
			t.Fatalf("after commit %d: %v", i, err)
		}
	}
	// Unindexed records, then a compaction that drops every other one.
	for i := 0; i < 300; i++ {
		if _, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	last, err := s.LatestUpdateID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := s.Compact(ctx, last, 0, func(id uint64, c []byte) ([]byte, bool, error) {
		return c, len(c) != 1 || c[0]%2 == 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	want := uint64(len(newest) + 150)
	if stats.RecordsBefore != uint64(len(newest)+300) || stats.RecordsAfter != want {
		t.Errorf("stats %+v, want %d records before and %d after", stats, len(newest)+300, want)
	}
	var n uint64
	err = s.ReadUpdates(ctx, 0, last, func(id uint64, c []byte) error {
		n++
		if len(c) > 1 {
			key, _, _ := strings.Cut(string(c), "=")
			if newest[key] != id {
				t.Errorf("record %d (%s) is not the newest for its key (%d)", id, c, newest[key])
			}
		}
		return nil
	})
	if err != nil || n != want {
		t.Errorf("read %d records, %v; want %d", n, err, want)
	}
}

func ExampleNew() {
	ctx := context.Background()
	s, err := memstore.New(memstore.Options{SingleKeyReplaces: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	other := s.Open() // another handle on the same log, as another process
	defer other.Close()

	rec, _ := logstore.AppendRecord(nil, []logstore.Item{{Key: []byte("k"), Value: []byte("v")}})
	res, err := s.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: rec, SingleKey: []byte("k")}})
	fmt.Println(res.Last, err)
	latest, err := other.LatestUpdateID(ctx)
	fmt.Println(latest, err)
	// Output:
	// 1 <nil>
	// 1 <nil>
}
