package logstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// pyItem appends one item of the Python framing to b, by the spec.
func pyItem(b []byte, key, value string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(key)))
	b = binary.BigEndian.AppendUint64(b, uint64(len(value)))
	return append(append(b, key...), value...)
}

// pyRecord builds a Python-framed record from key/value pairs ("" = delete).
func pyRecord(count uint32, kv ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, count)
	for i := 0; i+1 < len(kv); i += 2 {
		b = pyItem(b, kv[i], kv[i+1])
	}
	return b
}

func TestPythonLayout(t *testing.T) {
	got, err := logstore.AppendPythonRecord(nil, []logstore.Item{set("ab", "xyz"), del("k")})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 2,
		0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'x', 'y', 'z',
		0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 'k'}
	if !bytes.Equal(got, want) {
		t.Errorf("AppendPythonRecord =\n% x\nwant\n% x", got, want)
	}
}

func TestDecodePythonRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want []logstore.Item
	}{
		{"no items", pyRecord(0), nil},
		{"set", pyRecord(1, "key", "value"), []logstore.Item{set("key", "value")}},
		{"empty value is a delete", pyRecord(1, "key", ""), []logstore.Item{del("key")}},
		{"several", pyRecord(3, "a", "1", "b", "", "c", "3"), []logstore.Item{set("a", "1"), del("b"), set("c", "3")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Both entry points: the explicit decoder and auto-detection.
			for _, decode := range []func([]byte, func(logstore.Item) error) error{logstore.DecodePythonRecord, logstore.DecodeRecord} {
				var got []logstore.Item
				err := decode(tc.data, func(it logstore.Item) error { got = append(got, it); return nil })
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if err := diffItems(got, tc.want); err != nil {
					t.Error(err)
				}
			}
			if n, err := logstore.RecordItemCount(tc.data); err != nil || n != len(tc.want) {
				t.Errorf("RecordItemCount = %d, %v; want %d", n, err, len(tc.want))
			}
		})
	}
}

func TestDecodePythonRecordCorrupt(t *testing.T) {
	huge := binary.BigEndian.AppendUint32(nil, 1)
	huge = binary.BigEndian.AppendUint64(huge, 1<<63)
	huge = binary.BigEndian.AppendUint64(huge, 1<<63)
	wrap := binary.BigEndian.AppendUint32(nil, 1)
	wrap = binary.BigEndian.AppendUint64(wrap, 1)
	wrap = binary.BigEndian.AppendUint64(wrap, ^uint64(0))
	wrap = append(wrap, 'k')
	for _, tc := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "no item count"},
		{"short count", []byte{0, 0, 1}, "no item count"},
		{"count too high", pyRecord(2, "a", "1"), "truncated in item 1 of 2"},
		{"count too low", pyRecord(1, "a", "1", "b", "2"), "trailing bytes"},
		{"truncated header", pyRecord(1, "a", "1")[:10], "truncated in item 0"},
		{"truncated value", pyRecord(1, "a", "12")[:22], "exceed"},
		{"empty key", pyRecord(1, "", "1"), "empty key"},
		{"huge lengths", huge, "exceed"},
		{"lengths wrapping around", wrap, "exceed"},
		{"go magic", append([]byte("WCR\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"), "kv"...), "truncated in item 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := logstore.DecodePythonRecord(tc.data, func(logstore.Item) error { calls++; return nil })
			if !errors.Is(err, logstore.ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("DecodePythonRecord error = %v, want ErrCorrupt with %q", err, tc.msg)
			}
			if calls != 0 {
				t.Errorf("fn called %d times for a corrupt record", calls)
			}
		})
	}
}

func TestAppendPythonRecordErrors(t *testing.T) {
	dst := []byte("keep")
	for _, tc := range []struct {
		items []logstore.Item
		want  error
	}{
		{[]logstore.Item{set("", "v")}, logstore.ErrEmptyKey},
		{[]logstore.Item{del("")}, logstore.ErrEmptyKey},
		{[]logstore.Item{set("a", "1"), set("k", "")}, logstore.ErrNotRepresentable},
	} {
		got, err := logstore.AppendPythonRecord(dst, tc.items)
		if !errors.Is(err, tc.want) {
			t.Errorf("AppendPythonRecord(%v) error = %v, want %v", tc.items, err, tc.want)
		}
		if !bytes.Equal(got, dst) {
			t.Errorf("AppendPythonRecord with an error returned %q, want dst unchanged", got)
		}
	}
}

func FuzzDecodePythonRecord(f *testing.F) {
	f.Add(pyRecord(2, "key", "value", "gone", ""))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data, logstore.DecodePythonRecord)
		if bytes.HasPrefix(data, []byte("WCR")) && logstore.DecodePythonRecord(data, func(logstore.Item) error { return nil }) == nil {
			t.Fatalf("a Python record starting with WCR decoded: % x", data)
		}
	})
}
