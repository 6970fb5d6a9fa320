package shm

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Hostile files: state files damaged or forged in ways a valid writer never
// produces. Every operation on them must return (no hang), never panic or
// fault, and fail only with errors wrapping the package sentinels.

// probeResult holds the outcome of each step of probeFile.
type probeResult struct {
	open, read, check, tx, bigTx error
}

// probeTimeout bounds a probe: a probe still running then is a hang.
const probeTimeout = 20 * time.Second

// probeFile opens path and, if that works, checks a copy of the file (a
// Check whose rollback fails leaves the file to be repaired, which would
// decide the later steps), reads around the whole mapping, commits a small
// transaction and rolls back a large one (one that needs several journal
// chunks). It fails the test if the probe does not finish within
// probeTimeout.
func probeFile(t *testing.T, path string) probeResult {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".copy", data, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan probeResult, 1)
	go func() {
		var r probeResult
		f, err := Open(path, Options{Walk: listWalk, NoCreate: true})
		if err != nil {
			r.open = err
			done <- r
			return
		}
		defer f.Close()
		if c, err := Open(path+".copy", Options{Walk: listWalk, NoCreate: true}); err != nil {
			r.check = err
		} else {
			r.check = c.Check()
			c.Close()
		}
		r.read = readAround(f)
		r.tx = pushTx(f, 64)
		r.bigTx = bigTx(f, 300<<10)
		done <- r
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(probeTimeout):
		t.Fatalf("probe of %s did not finish in %v", path, probeTimeout)
		return probeResult{}
	}
}

// readAround reads words and ranges at interesting offsets (inside, at and
// past Size, past the mapping, near overflow) in one read section.
func readAround(f *File) error {
	seq, err := f.ReadBegin()
	if err != nil {
		return err
	}
	size := f.Size()
	offs := []uint64{0, 8, offSeq, size - 8, size - 1, size, size + 1, f.MaxSize() - 8, f.MaxSize(), 1 << 62, ^uint64(0) - 7, ^uint64(0)}
	for i := 0; i < UserRoots; i++ {
		offs = append(offs, f.Root(i), f.Root(i)+8)
	}
	var sink uint64
	for _, off := range offs {
		sink += f.Uint64(off)
		for _, n := range []uint64{0, 1, 8, 4096, size, ^uint64(0)} {
			if b := f.Bytes(off, n); len(b) > 0 {
				sink += uint64(b[0]) + uint64(b[len(b)-1])
			}
		}
	}
	_ = f.Stats()
	_ = f.Retired()
	f.ReadValid(seq)
	readSink = sink
	return nil
}

// readSink keeps readAround's reads from being optimized away.
var readSink uint64

// pushTx commits a transaction that prepends a block of the given size to
// the list at root 0 (see listWalk).
func pushTx(f *File, size uint64) error {
	tx, err := f.Begin()
	if err != nil {
		return err
	}
	off, err := tx.Alloc(size)
	if err != nil {
		tx.Rollback()
		return err
	}
	if b := tx.Fresh(off, 16); b != nil {
		binary.LittleEndian.PutUint64(b, f.Root(0))
		binary.LittleEndian.PutUint64(b[8:], 42)
	}
	tx.Put64(RootOffset(0), off)
	return tx.Commit()
}

// bigTx allocates a block of n bytes, overwrites it with journaled writes
// (so the journal spans several chunks) and rolls back.
func bigTx(f *File, n uint64) error {
	tx, err := f.Begin()
	if err != nil {
		return err
	}
	off, err := tx.Alloc(n)
	if err == nil {
		tx.PutBytes(off, make([]byte, n))
		err = tx.Err()
	}
	if rerr := tx.Rollback(); err == nil {
		err = rerr
	}
	return err
}

// allowedError reports whether err is nil or wraps a sentinel that a
// hostile file may cause (or, for Open, a failure to reserve the mapping
// the header asks for).
func allowedError(err error) bool {
	return err == nil || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrRetired) ||
		errors.Is(err, ErrNoSpace) || errors.Is(err, ErrTooLarge) || errors.Is(err, syscall.ENOMEM)
}

func (r probeResult) checkAllowed(t *testing.T) {
	t.Helper()
	for i, err := range []error{r.open, r.read, r.check, r.tx, r.bigTx} {
		if !allowedError(err) {
			t.Errorf("step %d failed with %v, which wraps no shm sentinel", i, err)
		}
	}
}

// validListFile writes a valid file holding a list of n blocks, allocated
// in one transaction before the journal exists, and returns its bytes.
func validListFile(t testing.TB, path string, n int) []byte {
	t.Helper()
	f, err := Open(path, Options{Walk: listWalk, MaxSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tx, err := f.Begin()
	if err != nil {
		t.Fatal(err)
	}
	next := uint64(0)
	for i := 0; i < n; i++ {
		off, err := tx.Alloc(64)
		if err != nil {
			t.Fatal(err)
		}
		b := tx.Fresh(off, 64)
		binary.LittleEndian.PutUint64(b, next)
		binary.LittleEndian.PutUint64(b[8:], uint64(i))
		next = off
	}
	tx.Put64(RootOffset(0), next)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Pop two blocks so that a free list is not empty.
	for i := 0; i < 2; i++ {
		tx, _ := f.Begin()
		head := f.Root(0)
		tx.Put64(RootOffset(0), f.Uint64(head))
		tx.Free(head, 64)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func put64(b []byte, off, v uint64)     { binary.LittleEndian.PutUint64(b[off:], v) }
func get64(b []byte, off uint64) uint64 { return binary.LittleEndian.Uint64(b[off:]) }

// TestHostileFiles damages a valid file in specific ways and checks what
// each operation reports.
func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	valid := validListFile(t, filepath.Join(dir, "valid"), 10)
	class64, _ := classOf(64)
	journal := get64(valid, offJournalHead)
	if journal == 0 {
		t.Fatal("valid file has no journal")
	}
	corrupt, retired := ErrCorrupt, ErrRetired
	for _, tc := range []struct {
		name   string
		mutate func(b []byte) []byte
		want   probeResult // sentinels each step must wrap; nil: must succeed
	}{
		{"valid", func(b []byte) []byte { return b }, probeResult{}},
		{"truncated below the recorded size", func(b []byte) []byte { return b[:len(b)-PageSize] },
			probeResult{open: corrupt}},
		{"recorded size not a page multiple", func(b []byte) []byte { put64(b, offSize, get64(b, offSize)-8); return b },
			probeResult{open: corrupt}},
		{"heap end past the size", func(b []byte) []byte { put64(b, offBump, get64(b, offSize)+8); return b },
			probeResult{open: corrupt}},
		{"reserved size beyond the limit", func(b []byte) []byte { put64(b, offMaxSize, 1<<60); return b },
			probeResult{open: corrupt}},
		{"journal head outside the heap", func(b []byte) []byte { put64(b, offJournalHead, get64(b, offSize)+PageSize); return b },
			probeResult{check: corrupt, tx: corrupt, bigTx: corrupt}},
		{"journal head in the header", func(b []byte) []byte { put64(b, offJournalHead, 8); return b },
			probeResult{check: corrupt, tx: corrupt, bigTx: corrupt}},
		{"journal chunk with a foreign next", func(b []byte) []byte { put64(b, journal, 1<<40); return b },
			probeResult{check: corrupt, bigTx: corrupt}},
		{"journal chunk with a next past the size", func(b []byte) []byte { put64(b, journal, get64(b, offSize)); return b },
			probeResult{check: corrupt, bigTx: corrupt}},
		{"journal chunk linked to itself", func(b []byte) []byte { put64(b, journal, journal); return b },
			probeResult{check: corrupt, bigTx: corrupt}},
		{"counter odd without a writer", func(b []byte) []byte { put64(b, offSeq, get64(b, offSeq)|seqWriting); return b },
			probeResult{}},
		{"dead writer with an overlong journal", func(b []byte) []byte {
			put64(b, offSeq, get64(b, offSeq)|seqWriting)
			put64(b, offWriterPID, 1)
			put64(b, offJournalBytes, 1<<30)
			return b
		}, probeResult{read: corrupt, check: corrupt, tx: corrupt, bigTx: corrupt}},
		{"journal bytes outside a transaction", func(b []byte) []byte { put64(b, offJournalBytes, 64); return b },
			probeResult{check: corrupt}},
		{"free list cycle", func(b []byte) []byte {
			head := get64(b, freeHeadOff(class64))
			put64(b, head, head)
			return b
		}, probeResult{check: corrupt}},
		{"free list head outside the heap", func(b []byte) []byte { put64(b, freeHeadOff(class64), 1<<40); return b },
			probeResult{check: corrupt, tx: corrupt}},
		{"free block with a wrong tag", func(b []byte) []byte { put64(b, get64(b, freeHeadOff(class64))+8, 7); return b },
			probeResult{check: corrupt, tx: corrupt}},
		{"list cycle", func(b []byte) []byte { put64(b, get64(b, RootOffset(0)), get64(b, RootOffset(0))); return b },
			probeResult{check: corrupt}},
		{"retired", func(b []byte) []byte { put64(b, offSeq, get64(b, offSeq)|seqRetired); return b },
			probeResult{read: retired, check: retired, tx: retired, bigTx: retired}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state")
			if err := os.WriteFile(path, tc.mutate(append([]byte(nil), valid...)), 0o600); err != nil {
				t.Fatal(err)
			}
			got := probeFile(t, path)
			steps := []string{"open", "read", "check", "tx", "bigTx"}
			gotErrs := []error{got.open, got.read, got.check, got.tx, got.bigTx}
			wantErrs := []error{tc.want.open, tc.want.read, tc.want.check, tc.want.tx, tc.want.bigTx}
			for i := range steps {
				if tc.want.open != nil && i > 0 {
					break
				}
				if w := wantErrs[i]; (w == nil) != (gotErrs[i] == nil) || w != nil && !errors.Is(gotErrs[i], w) {
					t.Errorf("%s: %v, want %v", steps[i], gotErrs[i], w)
				}
			}
		})
	}
}
