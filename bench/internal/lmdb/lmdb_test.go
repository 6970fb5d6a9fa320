package lmdb

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

func openTest(t *testing.T, opts Options) (*Env, string) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	path := filepath.Join(t.TempDir(), "data.mdb")
	e, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, path
}

func TestPutGet(t *testing.T) {
	e, _ := openTest(t, Options{NoSync: true})
	defer e.Close()
	const klen, vlen, n = 8, 300, 50
	var keys, vals []byte
	for i := range n {
		keys = append(keys, fmt.Sprintf("key%05d", i)...)
		vals = append(vals, bytes.Repeat([]byte{byte(i)}, vlen)...)
	}
	if err := e.PutBatch(keys, klen, vals, vlen); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		dst   []byte
		key   string
		found bool
		want  []byte
	}{
		{"first", nil, "key00000", true, bytes.Repeat([]byte{0}, vlen)},
		{"last, value longer than the spare capacity", make([]byte, 3, 10), "key00049", true, append([]byte{0, 0, 0}, bytes.Repeat([]byte{49}, vlen)...)},
		{"missing", []byte("x"), "key00050", false, []byte("x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := e.Get(tc.dst, []byte(tc.key))
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.found || !bytes.Equal(got, tc.want) {
				t.Errorf("Get(%q) = %d bytes, found=%v; want %d bytes, found=%v", tc.key, len(got), found, len(tc.want), tc.found)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	e, _ := openTest(t, Options{NoSync: true})
	defer e.Close()
	if _, _, err := e.Get(nil, nil); err == nil {
		t.Error("Get of an empty key: no error")
	}
	if err := e.PutBatch([]byte("abc"), 2, []byte("v"), 1); err == nil {
		t.Error("PutBatch with a partial key: no error")
	}
	if err := e.PutBatch(nil, 2, nil, 1); err != nil {
		t.Errorf("empty PutBatch: %v", err)
	}
}

func TestReadOnlyMissingFile(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	_, err := Open(filepath.Join(t.TempDir(), "absent.mdb"), Options{ReadOnly: true})
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("read-only open of a missing file: %v, want an LMDB error", err)
	}
}
