package memstore_test

import (
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
