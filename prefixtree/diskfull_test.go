package prefixtree

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/whycache/whycache/shm"
)

// mountSmallTmpfs mounts a tmpfs of the given size (e.g. "16m") on a new
// temporary directory, unmounted at the end of the test. It skips the test
// when not root or when the mount fails.
func mountSmallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillUntilFull commits batches of keys with payloads of the given size
// until a write fails, which must be for lack of space. The model gets the
// committed batches only. It returns the number of keys committed.
func fillUntilFull(t *testing.T, tr *Tree, m *model, prefix string, size int, nextID *uint64) int {
	t.Helper()
	written := 0
	for {
		b, err := tr.Begin()
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		var werr error
		for i := 0; i < 8 && werr == nil; i++ {
			k := fmt.Sprintf("%s/%06d", prefix, written+i)
			_, werr = b.Put([]byte(k), makeValue(k, *nextID, size), *nextID)
			keys = append(keys, k)
		}
		if werr == nil {
			werr = b.Commit()
		} else {
			b.Rollback()
		}
		if werr != nil {
			if !errors.Is(werr, shm.ErrNoSpace) {
				t.Fatalf("write failed with %v, want an error wrapping shm.ErrNoSpace", werr)
			}
			return written
		}
		for _, k := range keys {
			m.put(k, makeValue(k, *nextID, size), *nextID)
		}
		*nextID++
		written += len(keys)
	}
}

// TestDiskFull fills a 16 MiB tmpfs: writes fail with ErrNoSpace, the map
// stays equal to its committed batches and passes Check, and after deleting
// keys, writing works again.
func TestDiskFull(t *testing.T) {
	dir := mountSmallTmpfs(t, "16m")
	tr, err := Open(filepath.Join(dir, "state"), Options{MaxSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	m := newModel()
	id := uint64(1)
	// Large values first, then smaller ones into what is left.
	var counts []int
	for _, size := range []int{64 << 10, 4 << 10, 200} {
		n := fillUntilFull(t, tr, m, fmt.Sprintf("fill%d", size), size, &id)
		counts = append(counts, n)
		compareWithModel(t, tr, m)
		if err := tr.Check(); err != nil {
			t.Fatalf("after filling with %d-byte values: %v", size, err)
		}
	}
	fileSize, _ := tr.File().FileSize()
	t.Logf("full at %d bytes (file %d) with %v keys of 64 KiB, 4 KiB, 200 B", tr.File().Size(), fileSize, counts)
	if counts[0] == 0 {
		t.Fatal("not even one large value fit")
	}

	// A new process must be able to open and read the full file.
	other, err := Open(filepath.Join(dir, "state"), Options{NoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	compareWithModel(t, other, m)
	other.Close()

	// Delete the large values (and purge their tombstones) in small
	// batches, then write large values again into the freed space.
	freed := 0
	for freed < counts[0] {
		b, err := tr.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4 && freed < counts[0]; i++ {
			k := fmt.Sprintf("fill%d/%06d", 64<<10, freed)
			if _, err := b.Delete([]byte(k), id); err != nil {
				t.Fatalf("delete on a full disk: %v", err)
			}
			m.del(k, id)
			freed++
		}
		if _, err := b.PurgeTombstones(id); err != nil {
			t.Fatalf("purge on a full disk: %v", err)
		}
		if err := b.Commit(); err != nil {
			t.Fatalf("delete batch on a full disk: %v", err)
		}
		id++
	}
	for k := range m.dead {
		delete(m.dead, k)
		delete(m.ids, k)
	}
	compareWithModel(t, tr, m)
	// Small allocations (tree nodes, the hash table) may take parts of the
	// freed blocks, so not every large value need fit again; most must.
	again := fillUntilFull(t, tr, m, "again", 64<<10, &id)
	t.Logf("after deleting %d large values, %d fit again", counts[0], again)
	if again < counts[0]/2 {
		t.Fatalf("only %d of %d deleted large values fit again", again, counts[0])
	}
	compareWithModel(t, tr, m)
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
}
