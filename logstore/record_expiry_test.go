package logstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// TestRecordV1StillDecodes decodes a record written by the encoder of
// format version 1 (before expiry existed), and checks that items without
// an expiry still encode to exactly those bytes.
func TestRecordV1StillDecodes(t *testing.T) {
	data, err := os.ReadFile("testdata/record_v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAll(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []logstore.Item{set("user:1", "alice"), del("gone"), set("empty", "")}
	if err := diffItems(got, want); err != nil {
		t.Fatal(err)
	}
	again, err := logstore.AppendRecord(nil, want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Fatalf("re-encoded as % x, the version 1 bytes are % x", again, data)
	}
}

func TestRecordExpiryRoundTrip(t *testing.T) {
	const exp = int64(1_700_000_000_123_456_789)
	tests := []struct {
		name    string
		items   []logstore.Item
		version byte
	}{
		{"no expiry", []logstore.Item{set("a", "1"), del("b")}, 1},
		{"one expiring", []logstore.Item{expiring("a", "1", exp)}, 2},
		{"mixed", []logstore.Item{set("a", "1"), expiring("b", "2", exp), del("c"), expiring("d", "", math.MaxInt64)}, 2},
		{"delete ignores expiry", []logstore.Item{{Key: []byte("a"), Delete: true, Expires: exp}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := logstore.AppendRecord(nil, tc.items)
			if err != nil {
				t.Fatal(err)
			}
			if b[3] != tc.version {
				t.Fatalf("version byte %d, want %d", b[3], tc.version)
			}
			size := logstore.RecordOverhead
			for i := range tc.items {
				size += tc.items[i].EncodedSize()
			}
			if len(b) != size {
				t.Fatalf("record of %d bytes, EncodedSize sums to %d", len(b), size)
			}
			got, err := decodeAll(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := diffItems(got, normalized(tc.items)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRecordExpiryRefused(t *testing.T) {
	if _, err := logstore.AppendRecord(nil, []logstore.Item{expiring("a", "1", -5)}); !errors.Is(err, logstore.ErrBadExpiry) {
		t.Fatalf("negative expiry: %v, want ErrBadExpiry", err)
	}
	if _, err := logstore.AppendPythonRecord(nil, []logstore.Item{expiring("a", "1", 10)}); !errors.Is(err, logstore.ErrNotRepresentable) {
		t.Fatalf("Python framing of an expiring item: %v, want ErrNotRepresentable", err)
	}
}

// TestRecordExpiryCorrupt edits the header of an expiring item (then
// reseals the checksum) and expects ErrCorrupt before any item is seen.
func TestRecordExpiryCorrupt(t *testing.T) {
	good := mustAppend(t, set("a", "1"), expiring("k", "v", 42))
	// Offsets: header 8, item "a" 9+1+1 = 11, so item "k" starts at 19:
	// flags at 19, expiry at 28.
	const flags2, exp2 = 19, 28
	tests := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"expiry flag in version 1", func(b []byte) []byte { b[3] = 1; return b }},
		{"version 2 without expiry", func([]byte) []byte {
			b := mustAppend(t, set("a", "1"))
			b[3] = 2
			return b
		}},
		{"zero expiry", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[exp2:], 0); return b }},
		{"expiry above int64", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[exp2:], 1<<63); return b }},
		{"delete with expiry", func(b []byte) []byte { b[flags2] = 3; binary.LittleEndian.PutUint32(b[flags2+5:], 0); return b }},
		{"unknown flag", func(b []byte) []byte { b[flags2] = 6; return b }},
		{"truncated in expiry", func(b []byte) []byte { return append(b[:exp2+4], make([]byte, 8)...) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := seal(tc.edit(bytes.Clone(good)))
			got, err := decodeAll(b)
			if !errors.Is(err, logstore.ErrCorrupt) || got != nil {
				t.Fatalf("decode: %d items, %v; want ErrCorrupt and none", len(got), err)
			}
			if _, err := logstore.RecordItemCount(b); !errors.Is(err, logstore.ErrCorrupt) {
				t.Fatalf("RecordItemCount: %v, want ErrCorrupt", err)
			}
		})
	}
}
