package shm

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// listWalk treats root 0 as the head of a linked list of 64-byte blocks:
// u64 next | payload.
func listWalk(f *File, mark func(off, size uint64) error) error {
	for off, n := f.Root(0), 0; off != 0; off, n = f.Uint64(off), n+1 {
		if n > 1<<20 {
			return ErrCorrupt
		}
		if err := mark(off, 64); err != nil {
			return err
		}
	}
	return nil
}

func openTest(t *testing.T, path string) *File {
	t.Helper()
	f, err := Open(path, Options{Walk: listWalk, MaxSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Check(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Check: %v", err)
		}
		f.Close()
	})
	return f
}

func pushBlock(t *testing.T, f *File, payload uint64) {
	t.Helper()
	tx, err := f.Begin()
	if err != nil {
		t.Fatal(err)
	}
	off, err := tx.Alloc(64)
	if err != nil {
		t.Fatal(err)
	}
	b := tx.Fresh(off, 64)
	binary.LittleEndian.PutUint64(b, f.Root(0))
	binary.LittleEndian.PutUint64(b[8:], payload)
	tx.Put64(RootOffset(0), off)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func listPayloads(f *File) []uint64 {
	var out []uint64
	for off := f.Root(0); off != 0; off = f.Uint64(off) {
		out = append(out, f.Uint64(off+8))
	}
	return out
}

func TestCommitRollbackFree(t *testing.T) {
	dir := t.TempDir()
	f := openTest(t, filepath.Join(dir, "state"))
	for i := uint64(1); i <= 100; i++ {
		pushBlock(t, f, i)
	}
	if got := listPayloads(f); len(got) != 100 || got[0] != 100 {
		t.Fatalf("list = %v", got)
	}
	// Rollback restores the root and frees the block.
	tx, _ := f.Begin()
	off, _ := tx.Alloc(64)
	tx.Put64(RootOffset(0), off)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := listPayloads(f); len(got) != 100 {
		t.Fatalf("after rollback %d items", len(got))
	}
	// Pop half, freeing blocks; the file must not grow when we push again.
	for i := 0; i < 50; i++ {
		tx, _ := f.Begin()
		head := f.Root(0)
		tx.Put64(RootOffset(0), f.Uint64(head))
		tx.Free(head, 64)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	before := f.Stats().HeapBytes
	for i := uint64(0); i < 50; i++ {
		pushBlock(t, f, i)
	}
	if after := f.Stats().HeapBytes; after != before {
		t.Fatalf("heap grew from %d to %d although freed blocks were available", before, after)
	}
}

func TestRepairAfterAbandonedTx(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	f := openTest(t, path)
	for i := uint64(1); i <= 10; i++ {
		pushBlock(t, f, i)
	}
	// Simulate a writer that died mid-transaction: change things, then drop
	// the locks without finishing.
	tx, _ := f.Begin()
	off, _ := tx.Alloc(64)
	tx.Put64(RootOffset(0), off)
	tx.Put64(f.Root(0)+8, 999)
	tx.Free(off, 64)
	f.unlockFile()
	f.unlockProcess()

	g := openTest(t, path)
	// A reader finds the counter odd and repairs.
	seq, err := g.ReadBegin()
	if err != nil {
		t.Fatal(err)
	}
	if got := listPayloads(g); len(got) != 10 || got[0] != 10 || !g.ReadValid(seq) {
		t.Fatalf("after repair list = %v", got)
	}
	if g.Stats().Recoveries != 1 {
		t.Fatalf("recoveries = %d", g.Stats().Recoveries)
	}
	pushBlock(t, g, 11)
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty":     {},
		"short":     []byte("WHYCACHE"),
		"foreign":   make([]byte, PageSize),
		"truncated": nil,
	}
	good := filepath.Join(dir, "good")
	f, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	hdr, _ := os.ReadFile(good)
	trunc := append([]byte(nil), hdr...)
	binary.LittleEndian.PutUint64(trunc[offSize:], 2*PageSize)
	cases["truncated"] = trunc
	badVersion := append([]byte(nil), hdr...)
	binary.LittleEndian.PutUint32(badVersion[offVersion:], 99)
	cases["version"] = badVersion
	for name, data := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		if _, err := Open(p, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestFileModeAndGrowth(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	f, err := Open(p, Options{FileMode: 0o640, Walk: listWalk})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
	tx, _ := f.Begin()
	off, err := tx.Alloc(10 << 20)
	if err != nil {
		t.Fatal(err)
	}
	copy(tx.Fresh(off, 10<<20)[10<<20-4:], "tail")
	tx.Rollback()
	if f.Size() < 10<<20 {
		t.Fatalf("size %d", f.Size())
	}
}

// TestOpenWhileGrowing opens a file that another handle grows between the
// two reads of Open (its header and its size): the header says the new
// size, so the size must be read after it. Read first, the old size made
// the file look truncated ("file truncated: header says 1048576 bytes,
// file has 4096", seen under TestTornReads in prefixtree).
func TestOpenWhileGrowing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	f := openTest(t, path)
	grown := false
	testHookHeaderRead = func() {
		if !grown {
			grown = true
			if err := f.growLocked(f.Size() + 1); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { testHookHeaderRead = nil })
	before := f.Size()
	g, err := Open(path, Options{NoCreate: true})
	if err != nil {
		t.Fatalf("Open while the file grows from %d bytes: %v", before, err)
	}
	defer g.Close()
	if !grown || g.Size() <= before {
		t.Fatalf("the file did not grow under Open (grown %v, size %d, before %d)", grown, g.Size(), before)
	}
}
