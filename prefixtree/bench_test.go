package prefixtree

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The benchmark workload of the project's targets: 1,048,576 keys of 16
// random bytes with 100-byte values.
const (
	benchKeys     = 1 << 20
	benchKeyLen   = 16
	benchValueLen = 100
	benchBatch    = 1000
)

func benchData(n int, seed uint64) (keys [][]byte, value []byte) {
	r := rand.New(rand.NewPCG(seed, seed))
	keys = make([][]byte, n)
	for i := range keys {
		k := make([]byte, benchKeyLen)
		for j := range k {
			k[j] = byte(r.Uint32())
		}
		keys[i] = k
	}
	value = make([]byte, benchValueLen)
	for i := range value {
		value[i] = byte(i)
	}
	return keys, value
}

// loadTree writes keys in batches of benchBatch.
func loadTree(tb testing.TB, tr *Tree, keys [][]byte, value []byte) {
	for i := 0; i < len(keys); i += benchBatch {
		b, err := tr.Begin()
		if err != nil {
			tb.Fatal(err)
		}
		end := min(i+benchBatch, len(keys))
		if err := b.Reserve(end - i); err != nil {
			tb.Fatal(err)
		}
		for j := i; j < end; j++ {
			if _, err := b.Put(keys[j], value, uint64(j+1)); err != nil {
				tb.Fatal(err)
			}
		}
		if err := b.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

var bench1M struct {
	once sync.Once
	dir  string
	tree *Tree
	keys [][]byte
	err  error
}

// shared1M returns a tree holding the 1M-key workload, built once per test
// binary run.
func shared1M(b *testing.B) (*Tree, [][]byte) {
	bench1M.once.Do(func() {
		bench1M.dir, bench1M.err = os.MkdirTemp(benchBaseDir(), "prefixtree-bench")
		if bench1M.err != nil {
			return
		}
		bench1M.tree, bench1M.err = Open(filepath.Join(bench1M.dir, "state"), Options{})
		if bench1M.err != nil {
			return
		}
		var value []byte
		bench1M.keys, value = benchData(benchKeys, 1)
		loadTree(b, bench1M.tree, bench1M.keys, value)
	})
	if bench1M.err != nil {
		b.Fatal(bench1M.err)
	}
	return bench1M.tree, bench1M.keys
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench1M.tree != nil {
		bench1M.tree.Close()
	}
	if bench1M.dir != "" {
		os.RemoveAll(bench1M.dir)
	}
	os.Exit(code)
}

// benchBaseDir is where benchmark state files go: /dev/shm when it exists
// (where whycache keeps state files by default), else the temp directory.
func benchBaseDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return ""
}

// randomOrder returns a fixed pseudo-random sequence of key indexes, so the
// map benchmarks and the baseline read the same keys in the same order.
func randomOrder(n, count int) []int32 {
	r := rand.New(rand.NewPCG(7, 7))
	idx := make([]int32, count)
	for i := range idx {
		idx[i] = int32(r.IntN(n))
	}
	return idx
}

// BenchmarkGet1M reads uniformly random keys of the 1M workload, copying
// each value into a reused buffer.
func BenchmarkGet1M(b *testing.B) {
	tr, keys := shared1M(b)
	order := randomOrder(len(keys), 1<<16)
	buf := make([]byte, 0, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var found bool
		var err error
		buf, found, err = tr.AppendGet(buf[:0], keys[order[i&(1<<16-1)]])
		if err != nil || !found {
			b.Fatal("lookup failed", err)
		}
	}
}

// BenchmarkGet1MReadOnly is BenchmarkGet1M on the same file opened
// read-only (a PROT_READ mapping), as a process with read permission only
// opens it; it must be as fast. The new mapping is faulted in first, as
// the one BenchmarkGet1M uses was by loading the map: a reader pays that
// once, not per read.
func BenchmarkGet1MReadOnly(b *testing.B) {
	rw, keys := shared1M(b)
	tr, err := Open(rw.File().Path(), Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	prefault(tr)
	order := randomOrder(len(keys), 1<<16)
	buf := make([]byte, 0, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var found bool
		buf, found, err = tr.AppendGet(buf[:0], keys[order[i&(1<<16-1)]])
		if err != nil || !found {
			b.Fatal("lookup failed", err)
		}
	}
}

// prefault touches every page of the tree's mapping.
func prefault(tr *Tree) {
	m, size := tr.File().Mem(), tr.File().Size()
	var sink byte
	for off := uint64(0); off < size; off += 4096 {
		sink += m[off]
	}
	prefaultSink = sink
}

// prefaultSink keeps prefault's reads from being optimized away.
var prefaultSink byte

// BenchmarkGoMapGet1M is the baseline of BenchmarkGet1M: the same reads on a
// map[string][]byte, copying the value into a reused buffer.
func BenchmarkGoMapGet1M(b *testing.B) {
	keys, value := benchData(benchKeys, 1)
	m := make(map[string][]byte, len(keys))
	for _, k := range keys {
		m[string(k)] = append([]byte(nil), value...)
	}
	order := randomOrder(len(keys), 1<<16)
	buf := make([]byte, 0, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, ok := m[string(keys[order[i&(1<<16-1)]])]
		if !ok {
			b.Fatal("lookup failed")
		}
		buf = append(buf[:0], v...)
	}
}

// BenchmarkGetHot1K reads random keys of a 1,000-key map (all in cache).
func BenchmarkGetHot1K(b *testing.B) { benchGetHot1K(b, false) }

// BenchmarkGetHot1KReadOnly is BenchmarkGetHot1K through a read-only open
// of the file; it must be as fast.
func BenchmarkGetHot1KReadOnly(b *testing.B) { benchGetHot1K(b, true) }

func benchGetHot1K(b *testing.B, readOnly bool) {
	dir, err := os.MkdirTemp(benchBaseDir(), "prefixtree-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tr, err := Open(filepath.Join(dir, "state"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	keys, value := benchData(1000, 3)
	loadTree(b, tr, keys, value)
	if readOnly {
		if tr, err = Open(filepath.Join(dir, "state"), Options{ReadOnly: true}); err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		prefault(tr)
	}
	order := randomOrder(len(keys), 1<<16)
	buf := make([]byte, 0, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var found bool
		buf, found, _ = tr.AppendGet(buf[:0], keys[order[i&(1<<16-1)]])
		if !found {
			b.Fatal("lookup failed")
		}
	}
}

// BenchmarkPut1M loads the 1M-key workload into a new map in batches of
// 1,000 keys and reports keys/s.
func BenchmarkPut1M(b *testing.B) {
	keys, value := benchData(benchKeys, 5)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp(benchBaseDir(), "prefixtree-bench")
		if err != nil {
			b.Fatal(err)
		}
		tr, err := Open(filepath.Join(dir, "state"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		loadTree(b, tr, keys, value)
		b.StopTimer()
		tr.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(len(keys))*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkMemory1M reports the state file's size per key after loading the
// 1M-key workload (raw key+value bytes are 116 per key).
func BenchmarkMemory1M(b *testing.B) {
	tr, keys := shared1M(b)
	for i := 0; i < b.N; i++ {
		size, err := tr.File().FileSize()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(size)/float64(len(keys)), "bytes/key")
		b.ReportMetric(float64(tr.File().Stats().HeapBytes)/float64(len(keys)), "heap-bytes/key")
	}
}
