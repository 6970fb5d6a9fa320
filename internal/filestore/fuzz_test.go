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

// FuzzFileStoreSegment scans arbitrary segment bytes (either format) as a
// sealed segment and as the segment being appended to: the scanner never
// panics, fails only with errors wrapping logstore.ErrCorrupt, delivers
// ascending ids with one nonce per batch, marks only as batch ends, and
// stops where the complete batches end. Seeds are in
// testdata/fuzz/FuzzFileStoreSegment.
func FuzzFileStoreSegment(f *testing.F) {
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
		for _, check := range []fsSegCheck{{sealed: true}, {}, {ack: fsAck{end: int64(len(data) / 2)}}} {
			fsFuzzScan(t, file, int64(len(data)), check)
		}
	})
}

// fsFuzzScan scans file (size bytes) with check and verifies what the scan
// delivers.
func fsFuzzScan(t *testing.T, file *os.File, size int64, check fsSegCheck) {
	var sc fsScanner
	if err := sc.start(file, fsPos{}, check); err != nil {
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
		err = sc.eachFrame(b, func(fr fsFrame) error {
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
	if !check.sealed && sc.rd.format == fsFormat2 && sc.end < check.ack.end {
		t.Fatalf("scan ended at %d, below the acknowledged end %d, without an error", sc.end, check.ack.end)
	}
}

// FuzzFileStoreManifest decodes arbitrary MANIFEST bytes (version 1 or 2):
// errors wrap logstore.ErrCorrupt, and an accepted manifest survives a
// round trip through a published file (as version 2 once published). Seeds
// are in testdata/fuzz/FuzzFileStoreManifest.
func FuzzFileStoreManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := fsDecodeManifest(data)
		if err != nil {
			if !errors.Is(err, logstore.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		c := fsManifestCache{path: filepath.Join(t.TempDir(), fsManifestName)}
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

// FuzzFileStoreWatermark decodes arbitrary WATERMARK bytes: it never
// panics, and a decoded slot encodes back to the bytes it came from.
// Seeds are in testdata/fuzz/FuzzFileStoreWatermark.
func FuzzFileStoreWatermark(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		w, ok := fsDecodeWatermark(data)
		if !ok {
			if w != (fsWatermark{}) {
				t.Fatalf("no valid slot, but decoded %+v", w)
			}
			return
		}
		enc := w.encode()
		slot0 := len(data) >= fsWatermarkLen && bytes.Equal(data[:fsWatermarkLen], enc)
		slot1 := len(data) >= fsWatermarkStride+fsWatermarkLen && bytes.Equal(data[fsWatermarkStride:fsWatermarkStride+fsWatermarkLen], enc)
		if !slot0 && !slot1 {
			t.Fatalf("decoded %+v, which is in neither slot", w)
		}
		if w.seq == 0 || w.ack.end <= fsMagicLen || w.ack.lastID == 0 {
			t.Fatalf("implausible watermark accepted: %+v", w)
		}
	})
}
