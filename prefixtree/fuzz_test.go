package prefixtree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whycache/whycache/shm"
)

// FuzzOps decodes the input into operations on small keys (see fuzzOp),
// applies them to a tree and to the model, and compares the two after every
// commit and rollback; Check runs at the end.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 1, 10, 3, 1, 5})
	f.Add([]byte{0, 0x0c, 255, 1, 0x2d, 254, 3, 0x0c, 6, 2, 0x0c, 3, 5, 0, 5})
	f.Add(bytes.Repeat([]byte{0, 0x7f, 40, 1, 0x3b, 200, 3, 0x5e, 4, 0x7f, 5, 2}, 40))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := openTree(t)
		committed := newModel()
		var b *Batch
		var work *model
		nextID := uint64(100)
		for n := 0; len(in) > 0 && n < 2000; n++ {
			var op fuzzOp
			op, in = decodeFuzzOp(in, &nextID)
			switch op.kind {
			case opCommit, opRollback:
				if b == nil {
					continue
				}
				if op.kind == opCommit {
					if err := b.Commit(); err != nil {
						t.Fatal(err)
					}
					committed = work
				} else if err := b.Rollback(); err != nil {
					t.Fatal(err)
				}
				b = nil
				compareFuzzModel(t, tr, committed)
				continue
			}
			if b == nil {
				var err error
				if b, err = tr.Begin(); err != nil {
					t.Fatal(err)
				}
				work = cloneModel(committed)
			}
			op.apply(t, b, work)
		}
		if b != nil {
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
			committed = work
		}
		compareFuzzModel(t, tr, committed)
		if err := tr.Check(); err != nil {
			t.Fatal(err)
		}
	})
}

// Operation kinds of FuzzOps.
const (
	opPut = iota
	opPutOld
	opDelete
	opDeleteOld
	opPurge
	opCommit
	opRollback
	opKinds
)

// fuzzOp is one decoded FuzzOps operation.
type fuzzOp struct {
	kind int
	key  []byte
	id   uint64
	size int // payload bytes of a put
}

// decodeFuzzOp decodes one operation from in and returns the rest:
//
//	put, put with an old id:       kind | key byte | size byte
//	delete, delete with an old id: kind | key byte
//	purge:                         kind | age byte (purges ids <= next id - age)
//	commit, rollback:              kind
//
// Missing trailing bytes read as zero.
func decodeFuzzOp(in []byte, nextID *uint64) (fuzzOp, []byte) {
	arg := func(i int) byte {
		if i < len(in) {
			return in[i]
		}
		return 0
	}
	op := fuzzOp{kind: int(in[0]) % opKinds}
	used := 1
	switch op.kind {
	case opPut, opPutOld, opDelete, opDeleteOld:
		op.key = fuzzKey(arg(1))
		used = 2
		op.id = *nextID
		*nextID++
		if op.kind == opPutOld || op.kind == opDeleteOld {
			op.id -= 1 + uint64(arg(1)%16)
		}
		if op.kind == opPut || op.kind == opPutOld {
			op.size = fuzzSize(arg(2))
			used = 3
		}
	case opPurge:
		op.id = *nextID - uint64(arg(1))
		used = 2
	}
	return op, in[min(used, len(in)):]
}

// fuzzKey maps a byte to one of 60 short keys; half of them share an
// 8-byte prefix, so full-key comparisons decide their order.
func fuzzKey(kb byte) []byte {
	var k []byte
	if kb&4 != 0 {
		k = append(k, "prefix12"...)
	}
	for i := 0; i <= int(kb&3); i++ {
		k = append(k, "ab"[kb>>(3+i)&1])
	}
	return k
}

// fuzzSize maps a byte to a payload size: mostly small, some that change
// the entry's block class a lot.
func fuzzSize(sb byte) int {
	switch sb {
	case 255:
		return 3000
	case 254:
		return 70000
	}
	return int(sb)
}

// apply performs the operation on the batch and the working model and
// checks that both agree on whether it applied.
func (op fuzzOp) apply(t *testing.T, b *Batch, m *model) {
	t.Helper()
	k := string(op.key)
	var got, want bool
	var err error
	switch op.kind {
	case opPut, opPutOld:
		v := makeValue(k, op.id, op.size)
		got, err = b.Put(op.key, v, op.id)
		want = m.put(k, v, op.id)
	case opDelete, opDeleteOld:
		got, err = b.Delete(op.key, op.id)
		want = m.del(k, op.id)
	case opPurge:
		n, perr := b.PurgeTombstones(op.id)
		err = perr
		removed := 0
		for k := range m.dead {
			if m.ids[k] <= op.id {
				delete(m.dead, k)
				delete(m.ids, k)
				removed++
			}
		}
		if err == nil && n != removed {
			t.Fatalf("PurgeTombstones(%d) removed %d, model %d", op.id, n, removed)
		}
	}
	if err != nil {
		t.Fatalf("op %d on %q (id %d): %v", op.kind, k, op.id, err)
	}
	if got != want {
		t.Fatalf("op %d on %q (id %d): applied=%v, model says %v", op.kind, k, op.id, got, want)
	}
}

func cloneModel(m *model) *model {
	return &model{vals: maps.Clone(m.vals), ids: maps.Clone(m.ids), dead: maps.Clone(m.dead)}
}

// compareFuzzModel compares content (compareWithModel), the counters, and
// the id every key (live or tombstone) carries.
func compareFuzzModel(t *testing.T, tr *Tree, m *model) {
	t.Helper()
	compareWithModel(t, tr, m)
	if got := tr.Tombstones(); got != uint64(len(m.dead)) {
		t.Fatalf("Tombstones = %d, model %d", got, len(m.dead))
	}
	var data uint64
	for k, v := range m.vals {
		data += uint64(len(k) + len(v))
	}
	if got := tr.DataBytes(); got != data {
		t.Fatalf("DataBytes = %d, model %d", got, data)
	}
	for k, id := range m.ids {
		_, got, found, err := tr.GetEntry([]byte(k))
		if err != nil || got != id || found == m.dead[k] {
			t.Fatalf("GetEntry(%q) = id %d, found %v, %v; model id %d, deleted %v", k, got, found, err, id, m.dead[k])
		}
	}
}

// hostileBase is the valid state file FuzzHostileState mutates.
type hostileBase struct {
	file    []byte
	heapEnd uint64   // end of the used heap: mutations land below it
	keys    [][]byte // keys written (some deleted since)
}

var (
	baseOnce sync.Once
	baseFile hostileBase
	baseErr  error
)

// hostileBaseFile builds the base once per process: 300 keys with values of
// several sizes, a third deleted (tombstones), in a file of at most 64 MiB.
func hostileBaseFile(tb testing.TB) hostileBase {
	baseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hostile-base")
		if err != nil {
			baseErr = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "state")
		tr, err := Open(path, Options{MaxSize: 64 << 20})
		if err != nil {
			baseErr = err
			return
		}
		b, err := tr.Begin()
		if err != nil {
			baseErr = err
			return
		}
		for i := 0; i < 300; i++ {
			k := fmt.Sprintf("key/%03d/%s", i*7%300, bytes.Repeat([]byte{'x'}, i%13))
			baseFile.keys = append(baseFile.keys, []byte(k))
			if _, err := b.Put([]byte(k), makeValue(k, uint64(i+1), i%5*i), uint64(i+1)); err != nil {
				baseErr = err
				return
			}
			if i%3 == 0 {
				if _, err := b.Delete([]byte(k), uint64(i+1000)); err != nil {
					baseErr = err
					return
				}
			}
		}
		if err := b.Commit(); err != nil {
			baseErr = err
			return
		}
		baseFile.heapEnd = shm.HeapStart + tr.File().Stats().HeapBytes
		tr.Close()
		baseFile.file, baseErr = os.ReadFile(path)
	})
	if baseErr != nil {
		tb.Fatal(baseErr)
	}
	return baseFile
}

// Mutations of FuzzHostileState, 8 bytes each:
//
//	u8 op | u24 offset (modulo the used heap's end) | u32 value
//
// op%6: 0 set the byte; 1 set the aligned word to value; 2 set it to an
// aligned offset below the heap's end (value*8 modulo it); 3 copy the word
// at that offset there (duplicating pointers); 4 set it to a huge number
// (2^64-1-value); 5 truncate the file at the offset.
const mutationSize = 8

func mutateState(base hostileBase, muts []byte) []byte {
	b := append([]byte(nil), base.file...)
	end := base.heapEnd
	for ; len(muts) >= mutationSize; muts = muts[mutationSize:] {
		op := muts[0] % 6
		off := (uint64(muts[1]) | uint64(muts[2])<<8 | uint64(muts[3])<<16) % end
		val := uint64(binary.LittleEndian.Uint32(muts[4:]))
		word := off &^ 7
		if op != 5 && word+8 > uint64(len(b)) {
			continue
		}
		switch op {
		case 0:
			b[off] = byte(val)
		case 1:
			binary.LittleEndian.PutUint64(b[word:], val)
		case 2:
			binary.LittleEndian.PutUint64(b[word:], val*8%end&^7)
		case 3:
			if src := val * 8 % end &^ 7; src+8 <= uint64(len(b)) {
				copy(b[word:word+8], b[src:src+8])
			}
		case 4:
			binary.LittleEndian.PutUint64(b[word:], ^uint64(0)-val)
		case 5:
			b = b[:min(off, uint64(len(b)))]
		}
	}
	return b
}

// mutation encodes one FuzzHostileState mutation.
func mutation(op byte, off uint64, val uint32) []byte {
	m := []byte{op, byte(off), byte(off >> 8), byte(off >> 16), 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(m[4:], val)
	return m
}

// repeatLastSlot returns mutations that copy the next-to-last slot of the
// base's first leaf over the last one: a cursor that refills after the
// repeated key must not return it forever.
func repeatLastSlot(base hostileBase) []byte {
	u := func(off uint64) uint64 { return binary.LittleEndian.Uint64(base.file[off:]) }
	leaf := u(shm.RootOffset(rootTree))
	for depth := 0; u(leaf)&0xffff == kindInternal && depth < maxDepth; depth++ {
		leaf = u(leaf + nodeHeader)
	}
	cnt := u(leaf) >> 16 & 0xffff
	last, prev := leafSlotOff(leaf, cnt-1), leafSlotOff(leaf, cnt-2)
	return append(mutation(3, last, uint32(prev/8)), mutation(3, last+8, uint32((prev+8)/8))...)
}

// FuzzHostileState opens a valid state file after fuzzer-chosen mutations
// and truncations (mutateState) and uses it: Get, GetEntry, iteration,
// prefix scans, Check, and a batch of writes. Every call must return (the
// probe is bounded in time and iterations), never panic or fault, and fail
// only with errors wrapping the package sentinels. Open must reject a file
// shorter than its header records, and a file that passes Check must
// accept the batch and pass Check again.
func FuzzHostileState(f *testing.F) {
	root := func(i int) uint64 { return shm.RootOffset(i) }
	f.Add([]byte{})
	f.Add(mutation(5, 3*shm.PageSize, 0))
	f.Add(mutation(4, root(rootLive), 0))
	f.Add(mutation(4, root(rootTombstones), 5))
	f.Add(mutation(3, root(rootTree), uint32(root(rootTable)/8)))
	// Counters far below what the table holds: a purge rebuilds the table
	// too small for its entries.
	f.Add(append(mutation(1, root(rootLive), 100), mutation(1, root(rootTombstones), 0)...))
	f.Add(mutation(2, root(rootTree), 600))
	f.Add(mutation(0, shm.HeapStart+3, 0xff))
	f.Add(repeatLastSlot(hostileBaseFile(f)))
	f.Fuzz(func(t *testing.T, muts []byte) {
		base := hostileBaseFile(t)
		file := mutateState(base, muts)
		path := filepath.Join(t.TempDir(), "state")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- probeTree(path, uint64(len(file)), base.keys) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("probe of the mutated file did not finish in 30s")
		}
	})
}

// hostileAllowed reports whether err is nil or wraps an error a damaged
// file may cause.
func hostileAllowed(err error) bool {
	return err == nil || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, shm.ErrRetired) || errors.Is(err, shm.ErrNoSpace) || errors.Is(err, shm.ErrTooLarge)
}

// probeTree runs the FuzzHostileState steps and returns the first
// violation.
func probeTree(path string, fileLen uint64, keys [][]byte) error {
	tr, err := Open(path, Options{NoCreate: true})
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, syscall.ENOMEM) {
			return fmt.Errorf("Open: %v", err)
		}
		return nil
	}
	defer tr.Close()
	if size := tr.File().Size(); size > fileLen {
		return fmt.Errorf("Open accepted a %d-byte file whose header records %d bytes", fileLen, size)
	}
	var errs []error
	for _, k := range append(keys[:10:10], []byte("absent"), []byte("key/")) {
		_, err := tr.Get(k)
		errs = append(errs, err)
		_, _, _, err = tr.GetEntry(k)
		errs = append(errs, err)
	}
	for _, prefix := range [][]byte{nil, []byte("key/1")} {
		c := tr.Cursor()
		c.SetPrefix(prefix)
		steps := uint64(0)
		for c.Next() {
			if steps++; steps > fileLen/entryHeader {
				return fmt.Errorf("iteration with prefix %q returned more keys than the file can hold", prefix)
			}
		}
		errs = append(errs, c.Err())
	}
	_, _, _ = tr.Len(), tr.Tombstones(), tr.DataBytes()
	checkErr := tr.Check()
	errs = append(errs, checkErr)
	writeErr := hostileWrites(tr, keys)
	errs = append(errs, writeErr)
	for i, err := range errs {
		if !hostileAllowed(err) {
			return fmt.Errorf("step %d: error wrapping no sentinel: %v", i, err)
		}
	}
	if checkErr == nil {
		if writeErr != nil && !errors.Is(writeErr, shm.ErrNoSpace) {
			return fmt.Errorf("writes to a file that passed Check failed: %v", writeErr)
		}
		if err := tr.Check(); err != nil {
			return fmt.Errorf("Check passed, then failed after a batch: %v", err)
		}
	}
	return nil
}

// hostileWrites commits one batch: a new key, a bigger value for an
// existing key, a delete and a purge.
func hostileWrites(tr *Tree, keys [][]byte) error {
	b, err := tr.Begin()
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { _, err := b.Put([]byte("new/key"), []byte("v"), 1<<40); return err },
		func() error { _, err := b.Put(keys[1], make([]byte, 5000), 1<<40); return err },
		func() error { _, err := b.Delete(keys[2], 1<<40); return err },
		func() error { _, err := b.PurgeTombstones(1 << 39); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			b.Rollback()
			return err
		}
	}
	return b.Commit()
}
