package shm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen writes the input as a state file and probes it (probeFile):
// Open, reads over the whole mapping and past it, Check, a small and a
// large transaction. Every step must return, without a panic or a fault,
// nil or an error wrapping a package sentinel, and Open must reject a file
// shorter than its header says.
//
// Input: one flags byte, then the file. Unless flags bit 0 is set, the file
// is padded with zeros to the size its header records (up to
// fuzzMaxPadded), so that inputs stay small: seeds are valid files with
// their trailing zeros cut off.
func FuzzOpen(f *testing.F) {
	for _, seed := range openSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		file := fuzzFile(data)
		path := filepath.Join(t.TempDir(), "state")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		r := probeFile(t, path)
		r.checkAllowed(t)
		if r.open == nil && len(file) >= PageSize {
			if recorded := get64(file, offSize); recorded > uint64(len(file)) {
				t.Fatalf("Open accepted a %d-byte file whose header records %d bytes", len(file), recorded)
			}
		}
	})
}

// fuzzMaxPadded bounds the file FuzzOpen writes when padding.
const fuzzMaxPadded = 64 << 20

// fuzzFile turns a FuzzOpen input into file contents.
func fuzzFile(data []byte) []byte {
	flags, file := data[0], data[1:]
	if flags&1 == 0 && len(file) >= offSize+8 {
		if want := get64(file, offSize); want > uint64(len(file)) && want <= fuzzMaxPadded {
			file = append(file, make([]byte, want-uint64(len(file)))...)
		}
	}
	return file
}

// openSeeds returns FuzzOpen inputs made from valid files: a fresh file, a
// file holding a list, the same truncated, one captured in the middle of a
// transaction (as a killed writer leaves it) and a retired one.
func openSeeds(tb testing.TB) [][]byte {
	dir := tb.TempDir()
	fresh := filepath.Join(dir, "fresh")
	f, err := Open(fresh, Options{MaxSize: 64 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	f.Close()
	freshData, err := os.ReadFile(fresh)
	if err != nil {
		tb.Fatal(err)
	}
	listPath := filepath.Join(dir, "list")
	list := validListFile(tb, listPath, 10)

	f, err = Open(listPath, Options{Walk: listWalk})
	if err != nil {
		tb.Fatal(err)
	}
	tx, err := f.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	head := f.Root(0)
	tx.Put64(RootOffset(0), f.Uint64(head))
	tx.PutBytes(head+16, bytes.Repeat([]byte{0xee}, 48))
	midTx, err := os.ReadFile(listPath)
	if err != nil {
		tb.Fatal(err)
	}
	tx.Rollback()
	f.Close()

	retired := append([]byte(nil), list...)
	put64(retired, offSeq, get64(retired, offSeq)+seqStep|seqRetired)

	seed := func(flags byte, file []byte) []byte {
		return append([]byte{flags}, bytes.TrimRight(file, "\x00")...)
	}
	return [][]byte{
		seed(0, freshData),
		seed(0, list),
		seed(1, list),
		seed(0, midTx),
		seed(0, retired),
	}
}
