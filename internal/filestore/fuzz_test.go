package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// FuzzSegment scans arbitrary segment bytes (either format) as a
// sealed segment and as the segment being appended to: the scanner never
// panics, fails only with errors wrapping logstore.ErrCorrupt, delivers
// ascending ids with one nonce per batch, marks only as batch ends, and
// stops where the complete batches end. Seeds are in
// testdata/fuzz/FuzzSegment.
func FuzzSegment(f *testing.F) {
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := os.CreateTemp(dir, "seg")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file.Name())
		defer file.Close()
		if _, err := file.Write(data); err != nil {
			t.Fatal(err)
		}
		for _, check := range []scanCheck{{sealed: true}, {}, {ack: ackedEnd{end: int64(len(data) / 2)}}} {
			fuzzScan(t, file, int64(len(data)), check)
		}
	})
}

// fuzzScan scans file (size bytes) with check and verifies what the scan
// delivers.
func fuzzScan(t *testing.T, file *os.File, size int64, check scanCheck) {
	var sc scanner
	if err := sc.start(file, segPos{}, check); err != nil {
		if !errors.Is(err, logstore.ErrCorrupt) {
			t.Fatalf("start: %v", err)
		}
		return
	}
	var last uint64
	for {
		b, ok, err := sc.nextBatch()
		if err != nil {
			if !errors.Is(err, logstore.ErrCorrupt) {
				t.Fatalf("nextBatch: %v", err)
			}
			return
		}
		if !ok {
			break
		}
		n := 0
		err = sc.eachFrame(b, func(fr batchFrame) error {
			switch {
			case fr.id <= last:
				return fmt.Errorf("id %d after %d", fr.id, last)
			case fr.nonce != b.nonce:
				return fmt.Errorf("frame %d has nonce %x in a batch of %x", fr.id, fr.nonce, b.nonce)
			case fr.mark && (!fr.last || len(fr.contents) != 0):
				return fmt.Errorf("mark %d is not an empty batch end", fr.id)
			case fr.last != (n == b.frames-1):
				return fmt.Errorf("frame %d: batch end %v as frame %d of %d", fr.id, fr.last, n, b.frames)
			}
			last, n = fr.id, n+1
			return nil
		})
		if err != nil || n != b.frames || last != b.lastID || sc.end != b.end {
			t.Fatalf("batch %+v: %d frames delivered, last %d, end %d: %v", b, n, last, sc.end, err)
		}
	}
	if sc.end > size || sc.lastID != last {
		t.Fatalf("scan ended at %d (last id %d) in %d bytes (last delivered %d)", sc.end, sc.lastID, size, last)
	}
	if check.sealed && sc.end != size {
		t.Fatalf("sealed scan ended at %d of %d bytes without an error", sc.end, size)
	}
	if !check.sealed && sc.rd.format == format2 && sc.end < check.ack.end {
		t.Fatalf("scan ended at %d, below the acknowledged end %d, without an error", sc.end, check.ack.end)
	}
}

// FuzzManifest decodes arbitrary MANIFEST bytes (version 1 or 2):
// errors wrap logstore.ErrCorrupt, and an accepted manifest survives a
// round trip through a published file (as version 2 once published). Seeds
// are in testdata/fuzz/FuzzManifest.
func FuzzManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeManifest(data)
		if err != nil {
			if !errors.Is(err, logstore.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		c := manifestCache{path: filepath.Join(t.TempDir(), manifestName)}
		if err := c.publish(m, 0o600, false); err != nil {
			t.Fatal(err)
		}
		defer c.close()
		c.m = nil // force a read of the file
		back, err := c.load()
		if err != nil {
			t.Fatalf("published manifest does not load: %v", err)
		}
		if back.Version != m.Version {
			t.Fatalf("round trip changed the version from %d to %d", m.Version, back.Version)
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip: %+v, want %+v", back, m)
		}
	})
}

// FuzzWatermark decodes arbitrary WATERMARK bytes: it never
// panics, and a decoded slot encodes back to the bytes it came from.
// Seeds are in testdata/fuzz/FuzzWatermark.
func FuzzWatermark(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		w, ok := decodeWatermark(data)
		if !ok {
			if w != (watermark{}) {
				t.Fatalf("no valid slot, but decoded %+v", w)
			}
			return
		}
		enc := w.encode()
		slot0 := len(data) >= watermarkLen && bytes.Equal(data[:watermarkLen], enc)
		slot1 := len(data) >= watermarkStride+watermarkLen && bytes.Equal(data[watermarkStride:watermarkStride+watermarkLen], enc)
		if !slot0 && !slot1 {
			t.Fatalf("decoded %+v, which is in neither slot", w)
		}
		if w.seq == 0 || w.ack.end <= magicLen || w.ack.lastID == 0 {
			t.Fatalf("implausible watermark accepted: %+v", w)
		}
	})
}
