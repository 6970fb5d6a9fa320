package whycache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// inState reports whether key has an entry in c's state, visible or not.
func inState(t *testing.T, c *Instance, key string) bool {
	t.Helper()
	tr, err := c.tree()
	if err != nil {
		t.Fatal(err)
	}
	_, id, _, err := tr.GetEntry([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return id != 0
}

// wantExpiry checks GetWithExpiry of key on c.
func wantExpiry(t *testing.T, c *Instance, key, value string, exp time.Time) {
	t.Helper()
	v, got, err := c.GetWithExpiry([]byte(key))
	if err != nil || string(v) != value || !got.Equal(exp) {
		t.Fatalf("GetWithExpiry(%q) = %q, %v, %v; want %q, %v", key, v, got, err, value, exp)
	}
}

// TestInstanceExpiry: an expiring item is seen by the writer, by another
// process on its machine and by another machine until it expires, and by
// none of them after, through Get, GetWithExpiry and iteration; items that
// do not expire, or expire later, stay.
func TestInstanceExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		a := newInstance(t, store, Options{})
		mustUpdate(t, a)
		a2 := newInstance(t, store, Options{StatePath: a.StatePath()}) // another process, same machine
		b := newInstance(t, store, Options{})                          // another machine

		const short = 1500 * time.Millisecond
		start := time.Now()
		if _, err := a.SetWithTTL(ctx, []byte("short"), []byte("s"), short); err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetWithTTL(ctx, []byte("long"), []byte("l"), time.Hour); err != nil {
			t.Fatal(err)
		}
		mustSet(t, a, "plain", "p")
		if _, err := a.SetWithTTL(ctx, []byte("renewed"), []byte("old"), short); err != nil {
			t.Fatal(err)
		}
		mustSet(t, a, "renewed", "new") // an overwrite drops the expiry
		past := time.Now().Add(-time.Second)
		if _, err := a.SetMulti(ctx, []Item{{Key: []byte("gone"), Value: []byte("g"), ExpiresAt: past}, {Key: []byte("multi"), Value: []byte("m")}}); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, b)
		_, longExp, err := a.GetWithExpiry([]byte("long"))
		if err != nil || longExp.Before(start.Add(time.Hour)) || longExp.After(time.Now().Add(time.Hour)) {
			t.Fatalf("expiry of long: %v, %v", longExp, err)
		}
		for name, c := range map[string]*Instance{"writer": a, "same machine": a2, "other machine": b} {
			if time.Since(start) >= short {
				t.Skipf("the writes took longer than the ttl %v", short)
			}
			wantValue(t, c, "short", []byte("s"))
			wantExpiry(t, c, "long", "l", longExp)
			wantExpiry(t, c, "plain", "p", time.Time{})
			wantExpiry(t, c, "renewed", "new", time.Time{})
			wantErr(t, c, "gone", ErrNotFound)
			if got := fmt.Sprint(contents(c)); got != "map[long:l multi:m plain:p renewed:new short:s]" {
				t.Fatalf("%s: All = %s", name, got)
			}
		}
		time.Sleep(time.Until(start.Add(short)) + 20*time.Millisecond)
		for name, c := range map[string]*Instance{"writer": a, "same machine": a2, "other machine": b} {
			wantErr(t, c, "short", ErrNotFound)
			if _, _, err := c.GetWithExpiry([]byte("short")); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: GetWithExpiry of an expired key: %v", name, err)
			}
			if got := fmt.Sprint(contents(c)); got != "map[long:l multi:m plain:p renewed:new]" {
				t.Fatalf("%s: All after expiry = %s", name, got)
			}
			if !inState(t, c, "short") {
				t.Fatalf("%s: the expired item left the state, which only a write or a rebuild does", name)
			}
		}
		// A typed map sees the same.
		m := NewMap(b, StringCodec{})
		if _, err := NewMap(a, StringCodec{}).SetWithTTL(ctx, []byte("typed"), "t", time.Hour); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, b)
		if v, exp, err := m.GetWithExpiry([]byte("typed")); err != nil || v != "t" || exp.IsZero() {
			t.Fatalf("Map.GetWithExpiry = %q, %v, %v", v, exp, err)
		}
	})
}

func TestInstanceBadTTL(t *testing.T) {
	c := newInstance(t, testStores()[0].newLog(t), Options{})
	mustUpdate(t, c)
	ctx := context.Background()
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := c.SetWithTTL(ctx, []byte("k"), []byte("v"), ttl); !errors.Is(err, ErrBadTTL) {
			t.Fatalf("SetWithTTL(ttl %v): %v, want ErrBadTTL", ttl, err)
		}
	}
	for _, at := range []time.Time{time.Unix(0, 0), time.Unix(-10, 0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := c.SetMulti(ctx, []Item{{Key: []byte("k"), Value: []byte("v"), ExpiresAt: at}}); !errors.Is(err, ErrBadTTL) {
			t.Fatalf("SetMulti(ExpiresAt %v): %v, want ErrBadTTL", at, err)
		}
	}
	if id := c.UpdateID(); id != 0 {
		t.Fatalf("refused writes committed up to id %d", id)
	}
}

// TestInstanceExpirySnapshot: a snapshot leaves out the items expired when
// it is written, carries the expiry of the others, and a load drops those
// that expired since.
func TestInstanceExpirySnapshot(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		a := newInstance(t, store, Options{})
		mustUpdate(t, a)
		past := time.Now().Add(-time.Second)
		if _, err := a.SetMulti(ctx, []Item{{Key: []byte("expired-key"), Value: []byte("x"), ExpiresAt: past}}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetWithTTL(ctx, []byte("long"), []byte("l"), time.Hour); err != nil {
			t.Fatal(err)
		}
		const soon = 700 * time.Millisecond
		soonAt := time.Now().Add(soon)
		if _, err := a.SetMulti(ctx, []Item{{Key: []byte("soon"), Value: []byte("s"), ExpiresAt: soonAt}}); err != nil {
			t.Fatal(err)
		}
		mustSet(t, a, "plain", "p")
		_, longExp, err := a.GetWithExpiry([]byte("long"))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := a.WriteSnapshot(&buf); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(soonAt) {
			t.Skip("the snapshot took longer than the ttl")
		}
		if bytes.Contains(buf.Bytes(), []byte("expired-key")) {
			t.Fatal("the snapshot holds an item expired when it was written")
		}
		if !bytes.Contains(buf.Bytes(), []byte("soon")) {
			t.Fatal("the snapshot lacks an item not yet expired")
		}
		time.Sleep(time.Until(soonAt) + 20*time.Millisecond)
		b := newInstance(t, store, Options{})
		if err := b.LoadSnapshot(ctx, bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		wantExpiry(t, b, "long", "l", longExp)
		wantExpiry(t, b, "plain", "p", time.Time{})
		wantErr(t, b, "soon", ErrNotFound)
		if inState(t, b, "soon") || inState(t, b, "expired-key") {
			t.Fatal("the load kept an expired item in the state")
		}
	})
}

// TestInstanceExpiryRewrite: RewriteHistory drops expired items from the
// log, raising the horizon so that a machine that applied an older value
// of the key rebuilds instead of keeping it.
func TestInstanceExpiryRewrite(t *testing.T) {
	forEachStore(t, func(t *testing.T, ts testStore) {
		ctx := context.Background()
		store := ts.newLog(t)
		a := newInstance(t, store, Options{})
		mustUpdate(t, a)
		mustSet(t, a, "k", "older value")
		behind := newInstance(t, store, Options{})
		mustUpdate(t, behind) // holds k = older value
		exp := time.Now().Add(500 * time.Millisecond)
		if _, err := a.SetMulti(ctx, []Item{{Key: []byte("k"), Value: []byte("expiring"), ExpiresAt: exp}}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetWithTTL(ctx, []byte("long"), []byte("l"), time.Hour); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(exp) + 20*time.Millisecond)
		st, err := a.RewriteHistoryStats(ctx, 0, RewriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.RecordsAfter != 1 || st.Horizon == 0 {
			t.Fatalf("rewrite stats %+v: want only the record of long kept, and a horizon", st)
		}
		fresh := newInstance(t, store, Options{})
		for _, c := range map[string]*Instance{"behind": behind, "fresh": fresh} {
			mustUpdate(t, c)
			wantErr(t, c, "k", ErrNotFound)
			wantValue(t, c, "long", []byte("l"))
		}
		if inState(t, fresh, "k") {
			t.Fatal("a state built from the rewritten log holds the expired item")
		}
	})
}
