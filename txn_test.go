package whycache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestTxnReadYourWritesAndRollback: reads go through the buffer; an error
// or a panic from fn commits nothing; no writes commit nothing; a Txn used
// after fn returns fails.
func TestTxnReadYourWritesAndRollback(t *testing.T) {
	ctx := context.Background()
	a := newInstance(t, testStores()[0].newLog(t), Options{})
	mustUpdate(t, a)
	mustSet(t, a, "x", "state")
	mustSet(t, a, "y", "state")
	before := a.UpdateID()
	var kept *Txn
	id, err := a.Txn(ctx, func(tx *Txn) error {
		kept = tx
		if v, err := tx.Get([]byte("x")); err != nil || string(v) != "state" {
			return fmt.Errorf("Get x from the state: %q, %v", v, err)
		}
		tx.Set([]byte("x"), []byte("mine"))
		tx.Delete([]byte("y"))
		tx.SetWithTTL([]byte("z"), []byte("ttl"), time.Hour)
		if v, err := tx.Get([]byte("x")); err != nil || string(v) != "mine" {
			return fmt.Errorf("Get x after Set: %q, %v", v, err)
		}
		if _, err := tx.Get([]byte("y")); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("Get y after Delete: %v", err)
		}
		wantValue(t, a, "x", []byte("state")) // nothing visible yet
		return nil
	})
	if err != nil || id <= before {
		t.Fatalf("Txn = %d, %v", id, err)
	}
	wantValue(t, a, "x", []byte("mine"))
	wantErr(t, a, "y", ErrNotFound)
	wantValue(t, a, "z", []byte("ttl"))
	if err := kept.Set([]byte("late"), nil); !errors.Is(err, ErrTxnDone) {
		t.Fatalf("Set after the Txn: %v", err)
	}

	after := a.UpdateID()
	boom := errors.New("boom")
	if _, err := a.Txn(ctx, func(tx *Txn) error { tx.Set([]byte("x"), []byte("no")); return boom }); err != boom {
		t.Fatalf("Txn with error: %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "panic in fn" {
				t.Fatalf("recovered %v", r)
			}
		}()
		a.Txn(ctx, func(tx *Txn) error { tx.Set([]byte("x"), []byte("no")); panic("panic in fn") })
	}()
	if id, err := a.Txn(ctx, func(tx *Txn) error { tx.Get([]byte("x")); return nil }); id != 0 || err != nil {
		t.Fatalf("Txn without writes = %d, %v", id, err)
	}
	if _, err := a.Txn(ctx, func(tx *Txn) error { return tx.Set(nil, []byte("v")) }); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	if got := a.UpdateID(); got != after {
		t.Fatalf("rolled back transactions moved the update id from %d to %d", after, got)
	}
	wantValue(t, a, "x", []byte("mine"))
}

// TestTxnSeenWholeElsewhere: a transaction large enough to be split into
// many records is one commit, and a reader on another machine never sees
// part of it, on every store.
func TestTxnSeenWholeElsewhere(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		a, b := splittingWriterAndReader(t, ts)
		const n = 3000
		latest := a.UpdateID()
		id, err := a.Txn(ctx, func(tx *Txn) error {
			for i := 0; i < n; i++ {
				if err := tx.Set([]byte(fmt.Sprintf("tx-%04d", i)), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if id-latest < 100 {
			t.Fatalf("the transaction took %d records; the test needs it split", id-latest)
		}
		updateWatchingForPart(t, b, "tx-0000", fmt.Sprintf("tx-%04d", n-1))
		wantValue(t, b, fmt.Sprintf("tx-%04d", n-1), []byte("v"))
	})
}

func TestMapTxnAndGetOrLoad(t *testing.T) {
	ctx := context.Background()
	a := newInstance(t, testStores()[0].newLog(t), Options{})
	mustUpdate(t, a)
	m := NewMap(a, JSONCodec[int]{})
	if _, err := m.Txn(ctx, func(tx *MapTxn[int]) error {
		tx.Set([]byte("n"), 41)
		v, err := tx.Get([]byte("n"))
		if err != nil {
			return err
		}
		return tx.Set([]byte("n"), v+1)
	}); err != nil {
		t.Fatal(err)
	}
	v, err := m.GetOrLoad(ctx, []byte("n"), func(context.Context) (int, time.Duration, error) { return 0, 0, errors.New("must not load") })
	if err != nil || v != 42 {
		t.Fatalf("GetOrLoad of a stored key = %d, %v", v, err)
	}
	v, err = m.GetOrLoad(ctx, []byte("m"), func(context.Context) (int, time.Duration, error) { return 7, time.Hour, nil })
	if err != nil || v != 7 {
		t.Fatalf("GetOrLoad of a missing key = %d, %v", v, err)
	}
	if got, exp, err := m.GetWithExpiry([]byte("m")); err != nil || got != 7 || exp.IsZero() {
		t.Fatalf("loaded value stored as %d, %v, %v", got, exp, err)
	}
}
