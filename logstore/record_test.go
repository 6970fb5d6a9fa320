package logstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/whycache/whycache/logstore"
)

// set and del are shorthands for building item lists in tables.
func set(k, v string) logstore.Item { return logstore.Item{Key: []byte(k), Value: []byte(v)} }
func del(k string) logstore.Item    { return logstore.Item{Key: []byte(k), Delete: true} }

// expiring is a set of k that expires at exp (unix nanoseconds).
func expiring(k, v string, exp int64) logstore.Item {
	return logstore.Item{Key: []byte(k), Value: []byte(v), Expires: exp}
}

// decodeAll decodes data and returns its items (copied) or the error.
func decodeAll(data []byte) ([]logstore.Item, error) {
	var out []logstore.Item
	err := logstore.DecodeRecord(data, func(it logstore.Item) error {
		out = append(out, logstore.Item{Key: bytes.Clone(it.Key), Value: bytes.Clone(it.Value), Delete: it.Delete, Expires: it.Expires})
		return nil
	})
	return out, err
}

// normalized returns items as they decode: deletes carry no value.
func normalized(items []logstore.Item) []logstore.Item {
	out := make([]logstore.Item, len(items))
	for i, it := range items {
		out[i] = it
		if it.Delete {
			out[i].Value, out[i].Expires = nil, 0
		}
	}
	return out
}

// diffItems describes the first difference between two item lists; an
// empty and a nil value are the same.
func diffItems(got, want []logstore.Item) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d items, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.Delete != w.Delete || g.Expires != w.Expires {
			return fmt.Errorf("item %d = {%q %q %v %d}, want {%q %q %v %d}", i, g.Key, g.Value, g.Delete, g.Expires, w.Key, w.Value, w.Delete, w.Expires)
		}
	}
	return nil
}

// seal rewrites the checksum of a Go-format record after its body was
// edited, so that a test reaches the checks behind the checksum.
func seal(b []byte) []byte {
	b = bytes.Clone(b)
	n := len(b) - 8
	binary.LittleEndian.PutUint64(b[n:], xxhash.Sum64(b[:n]))
	return b
}

// mustAppend encodes items or fails the test.
func mustAppend(t testing.TB, items ...logstore.Item) []byte {
	t.Helper()
	b, err := logstore.AppendRecord(nil, items)
	if err != nil {
		t.Fatalf("AppendRecord: %v", err)
	}
	return b
}

func TestItemSize(t *testing.T) {
	for _, tc := range []struct {
		key, value int
		del        bool
		want       int
	}{
		{1, 0, false, 10},
		{16, 100, false, 125},
		{16, 100, true, 25},
		{3, 0, true, 12},
	} {
		if got := logstore.ItemSize(tc.key, tc.value, tc.del); got != tc.want {
			t.Errorf("ItemSize(%d, %d, %v) = %d, want %d", tc.key, tc.value, tc.del, got, tc.want)
		}
	}
}

// TestRecordLayout pins the version 1 layout byte by byte.
func TestRecordLayout(t *testing.T) {
	got := mustAppend(t, set("ab", "xyz"), del("k"))
	var want []byte
	want = append(want, 'W', 'C', 'R', 1, 2, 0, 0, 0)
	want = append(want, 0, 2, 0, 0, 0, 3, 0, 0, 0, 'a', 'b', 'x', 'y', 'z')
	want = append(want, 1, 1, 0, 0, 0, 0, 0, 0, 0, 'k')
	want = binary.LittleEndian.AppendUint64(want, xxhash.Sum64(want))
	if !bytes.Equal(got, want) {
		t.Errorf("AppendRecord =\n% x\nwant\n% x", got, want)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	big := strings.Repeat("v", 100<<10)
	for _, tc := range []struct {
		name  string
		items []logstore.Item
	}{
		{"no items", nil},
		{"one set", []logstore.Item{set("key", "value")}},
		{"empty value", []logstore.Item{set("key", "")}},
		{"delete", []logstore.Item{del("key")}},
		{"delete with a value", []logstore.Item{{Key: []byte("k"), Value: []byte("ignored"), Delete: true}}},
		{"mixed", []logstore.Item{set("a", "1"), del("b"), set("c", ""), set("a", "2")}},
		{"binary", []logstore.Item{set("\x00\xff", "\x00\x01\x02"), set("WCR", "\x01")}},
		{"large value", []logstore.Item{set("big", big)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b, err := logstore.AppendRecord(bytes.Clone(prefix), tc.items)
			if err != nil {
				t.Fatalf("AppendRecord: %v", err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("AppendRecord did not keep dst")
			}
			b = b[len(prefix):]
			size := logstore.RecordOverhead
			for _, it := range tc.items {
				size += logstore.ItemSize(len(it.Key), len(it.Value), it.Delete)
			}
			if len(b) != size {
				t.Errorf("record of %d bytes, sizes add up to %d", len(b), size)
			}
			if n, err := logstore.RecordItemCount(b); err != nil || n != len(tc.items) {
				t.Errorf("RecordItemCount = %d, %v; want %d", n, err, len(tc.items))
			}
			got, err := decodeAll(b)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if err := diffItems(got, normalized(tc.items)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestAppendRecordErrors(t *testing.T) {
	dst := []byte("keep")
	for _, items := range [][]logstore.Item{
		{{Key: nil, Value: []byte("v")}},
		{set("ok", "v"), {Key: []byte{}, Delete: true}},
	} {
		got, err := logstore.AppendRecord(dst, items)
		if !errors.Is(err, logstore.ErrEmptyKey) {
			t.Errorf("AppendRecord(%v) error = %v, want ErrEmptyKey", items, err)
		}
		if !bytes.Equal(got, dst) {
			t.Errorf("AppendRecord with an error returned %q, want dst unchanged", got)
		}
	}
}

func TestDecodeRecordCorrupt(t *testing.T) {
	valid := mustAppend(t, set("key", "value"), del("gone"))
	edit := func(at int, b ...byte) []byte {
		c := bytes.Clone(valid)
		copy(c[at:], b)
		return seal(c)
	}
	// Offsets in valid: count at 4, first item at 8 (flags), 9 (key len),
	// 13 (value len); second item at 25.
	for _, tc := range []struct {
		name, data, msg string
	}{
		{"empty", "", "no item count"},
		{"magic only", "WCR", "shorter than"},
		{"version 3", string(edit(3, 3)), "unsupported record version 3"},
		{"version 0", string(edit(3, 0)), "unsupported record version 0"},
		{"bad checksum", string(valid[:len(valid)-1]) + string([]byte{^valid[len(valid)-1]}), "checksum"},
		{"count too high", string(edit(4, 3)), "truncated in item 2"},
		{"count too low", string(edit(4, 1)), "trailing bytes"},
		{"count huge", string(edit(4, 0xff, 0xff, 0xff, 0xff)), "truncated"},
		{"unknown flag", string(edit(8, 2)), "unknown flags"},
		{"empty key", string(edit(9, 0, 0, 0, 0)), "empty key"},
		{"key too long", string(edit(9, 0xff, 0xff, 0xff, 0xff)), "exceed"},
		{"value too long", string(edit(13, 0xff, 0xff, 0xff, 0xff)), "exceed"},
		{"value too short", string(edit(13, 4)), "unknown flags"},
		{"delete with value", string(edit(8, 1)), "has a value"},
		{"trailing byte", string(seal(append(append(bytes.Clone(valid[:len(valid)-8]), 0), make([]byte, 8)...))), "trailing"},
		{"python framing, truncated", "\x00\x00\x00\x01\x00", "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := logstore.DecodeRecord([]byte(tc.data), func(logstore.Item) error { calls++; return nil })
			if !errors.Is(err, logstore.ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("DecodeRecord error = %v, want ErrCorrupt with %q", err, tc.msg)
			}
			if calls != 0 {
				t.Errorf("fn called %d times for a corrupt record", calls)
			}
			if _, err := logstore.RecordItemCount([]byte(tc.data)); !errors.Is(err, logstore.ErrCorrupt) {
				t.Errorf("RecordItemCount error = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestDecodeRecordEveryDamage checks that every truncation and every single
// bit flip of a valid record is rejected before fn is called.
func TestDecodeRecordEveryDamage(t *testing.T) {
	valid := mustAppend(t, set("key", "value"), del("gone"), set("e", ""))
	var damaged [][]byte
	for n := 0; n < len(valid); n++ {
		damaged = append(damaged, valid[:n])
	}
	for i := range valid {
		for bit := 0; bit < 8; bit++ {
			c := bytes.Clone(valid)
			c[i] ^= 1 << bit
			damaged = append(damaged, c)
		}
	}
	for _, d := range damaged {
		calls := 0
		err := logstore.DecodeRecord(d, func(logstore.Item) error { calls++; return nil })
		if !errors.Is(err, logstore.ErrCorrupt) || calls != 0 {
			t.Errorf("DecodeRecord(% x) = %v after %d calls, want ErrCorrupt before any", d, err, calls)
		}
	}
}

func TestDecodeRecordCallback(t *testing.T) {
	data := mustAppend(t, set("a", "1"), set("b", "2"), set("c", "3"))
	errStop := errors.New("stop")
	var keys []string
	err := logstore.DecodeRecord(data, func(it logstore.Item) error {
		keys = append(keys, string(it.Key))
		// Item slices are capped: appending must not overwrite the record.
		_ = append(it.Key, '!')
		if len(keys) == 2 {
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Errorf("DecodeRecord returned %v, want fn's error as is", err)
	}
	if strings.Join(keys, ",") != "a,b" {
		t.Errorf("fn saw keys %v, want [a b]", keys)
	}
	if _, err := logstore.RecordItemCount(data); err != nil {
		t.Errorf("record damaged through a decoded key: %v", err)
	}
}

func TestDecodeRecordDoesNotAllocate(t *testing.T) {
	items := []logstore.Item{set("key", "value"), del("gone")}
	py, err := logstore.AppendPythonRecord(nil, items)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	fn := func(it logstore.Item) error { n += len(it.Key); return nil }
	for _, d := range [][]byte{mustAppend(t, items...), py} {
		if a := testing.AllocsPerRun(100, func() { _ = logstore.DecodeRecord(d, fn) }); a != 0 {
			t.Errorf("DecodeRecord(% x) allocates %.1f times per call", d[:4], a)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(mustAppend(f, set("key", "value"), del("gone")))
	f.Add(mustAppend(f, set("key", "value"), expiring("ttl", "v", 1_700_000_000_000_000_000), del("gone")))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data, logstore.DecodeRecord)
		// Also with a correct checksum, so that mutations reach the checks
		// behind it.
		if len(data) >= logstore.RecordOverhead && bytes.HasPrefix(data, []byte("WCR")) {
			checkDecode(t, seal(data), logstore.DecodeRecord)
		}
	})
}

// checkDecode decodes data with decode and checks the decoder's contract:
// either an ErrCorrupt error before any callback, or items whose count
// RecordItemCount agrees with and whose re-encoding in the detected framing
// is data again (both encodings are canonical).
func checkDecode(t *testing.T, data []byte, decode func([]byte, func(logstore.Item) error) error) {
	var items []logstore.Item
	err := decode(data, func(it logstore.Item) error {
		items = append(items, it)
		return nil
	})
	if err != nil {
		if !errors.Is(err, logstore.ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		if len(items) != 0 {
			t.Fatalf("fn called %d times before error %v", len(items), err)
		}
		return
	}
	if n, err := logstore.RecordItemCount(data); err != nil || n != len(items) {
		t.Fatalf("RecordItemCount = %d, %v; decoded %d items", n, err, len(items))
	}
	var again []byte
	if bytes.HasPrefix(data, []byte("WCR")) {
		again, err = logstore.AppendRecord(nil, items)
	} else {
		again, err = logstore.AppendPythonRecord(nil, items)
	}
	if err != nil {
		t.Fatalf("re-encoding decoded items: %v", err)
	}
	if !bytes.Equal(again, data) {
		t.Fatalf("re-encoding differs:\n% x\nwant\n% x", again, data)
	}
}

// itemsFromBytes turns fuzz input into items: each item takes a header byte
// (bit 0 delete, bits 1-3 key length, bits 4-7 value length) and then that
// many key and value bytes, as far as the input goes. A key length field of
// 7 also makes the item expire, at a time taken from the header byte.
func itemsFromBytes(data []byte) []logstore.Item {
	var items []logstore.Item
	for len(data) > 0 {
		h := data[0]
		data = data[1:]
		kl := min(int(h>>1&7), len(data))
		it := logstore.Item{Key: data[:kl], Delete: h&1 != 0}
		if h>>1&7 == 7 {
			it.Expires = 1_700_000_000_000_000_000 + int64(h)
		}
		data = data[kl:]
		vl := min(int(h>>4), len(data))
		it.Value = data[:vl]
		data = data[vl:]
		items = append(items, it)
	}
	return items
}

func FuzzRecordRoundTrip(f *testing.F) {
	f.Add([]byte("\x23ab\x00xyz\x03k"))
	f.Add([]byte("\x02k"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		items := itemsFromBytes(data)
		emptyKey, notPython := false, false
		for _, it := range items {
			emptyKey = emptyKey || len(it.Key) == 0
			notPython = notPython || (!it.Delete && (len(it.Value) == 0 || it.Expires != 0))
		}
		checkRoundTrip(t, items, logstore.AppendRecord, emptyKey, logstore.ErrEmptyKey)
		if !emptyKey {
			checkRoundTrip(t, items, logstore.AppendPythonRecord, notPython, logstore.ErrNotRepresentable)
		}
	})
}

// checkRoundTrip encodes items with enc and decodes them back with
// DecodeRecord, which must give the items again; when refused, enc must
// fail with an error wrapping wantErr instead.
func checkRoundTrip(t *testing.T, items []logstore.Item, enc func([]byte, []logstore.Item) ([]byte, error), refused bool, wantErr error) {
	t.Helper()
	b, err := enc(nil, items)
	if refused {
		if !errors.Is(err, wantErr) {
			t.Fatalf("encoding %v: %v, want %v", items, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("encoding %v: %v", items, err)
	}
	got, err := decodeAll(b)
	if err != nil {
		t.Fatalf("DecodeRecord(% x): %v", b, err)
	}
	if err := diffItems(got, normalized(items)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	items := []logstore.Item{{Key: bytes.Repeat([]byte("k"), 16), Value: bytes.Repeat([]byte("v"), 100)}}
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(logstore.RecordOverhead + logstore.ItemSize(16, 100, false)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = logstore.AppendRecord(buf[:0], items); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	data := mustAppend(b, logstore.Item{Key: bytes.Repeat([]byte("k"), 16), Value: bytes.Repeat([]byte("v"), 100)})
	n := 0
	fn := func(it logstore.Item) error { n += len(it.Value); return nil }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := logstore.DecodeRecord(data, fn); err != nil {
			b.Fatal(err)
		}
	}
}
