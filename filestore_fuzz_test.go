package whycache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/whycache/whycache/logstore"
)

// FuzzFileStoreSegment scans arbitrary segment bytes: the scanner never
// panics, fails only with errors wrapping logstore.ErrCorrupt, delivers
// ascending ids, and stops where the complete batches end. Seeds are in
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
		var sc fsScanner
		if err := sc.start(file, 0, 0); err != nil {
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
			err = sc.eachFrame(b, func(id uint64, c []byte) error {
				if id <= last {
					return fmt.Errorf("id %d after %d", id, last)
				}
				last, n = id, n+1
				return nil
			})
			if err != nil || n != b.frames || last != b.lastID || sc.end != b.end {
				t.Fatalf("batch %+v: %d frames delivered, last %d, end %d: %v", b, n, last, sc.end, err)
			}
		}
		if sc.end > int64(len(data)) || sc.lastID != last {
			t.Fatalf("scan ended at %d (last id %d) in %d bytes (last delivered %d)", sc.end, sc.lastID, len(data), last)
		}
	})
}

// FuzzFileStoreManifest decodes arbitrary MANIFEST bytes: errors wrap
// logstore.ErrCorrupt, and an accepted manifest survives a round trip
// through a published file. Seeds are in testdata/fuzz/FuzzFileStoreManifest.
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
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip: %+v, want %+v", back, m)
		}
	})
}

// ExampleNewFileStore commits a batch to a file store and reads it back.
func ExampleNewFileStore() {
	dir, err := os.MkdirTemp("", "whycache-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store, err := NewFileStore(filepath.Join(dir, "log"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	ctx := context.Background()
	last, err := commitLast(ctx, store, []logstore.Record{{Contents: []byte("first")}, {Contents: []byte("second")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("committed up to id", last)
	err = store.ReadUpdates(ctx, 1, last, func(id uint64, contents []byte) error {
		fmt.Printf("%d: %s\n", id, contents)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// committed up to id 2
	// 1: first
	// 2: second
}
