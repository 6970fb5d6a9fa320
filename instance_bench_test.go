package whycache

import (
	"bytes"
	"context"
	"fmt"
	"github.com/whycache/whycache/internal/mariadbtest"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whycache/whycache/logstore"
	"github.com/whycache/whycache/logstore/memstore"
)

// Benchmarks of the public API on the project's workload: 16-byte random
// keys with 100-byte values. WHYCACHE_BENCH_KEYS changes the key count of
// the catch-up, snapshot and rewrite benchmarks (default 1,000,000).

func benchKeyCount(def int) int {
	if s := os.Getenv("WHYCACHE_BENCH_KEYS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return def
}

func benchKeys(n int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed))
	keys := make([][]byte, n)
	for i := range keys {
		k := make([]byte, 16)
		for j := range k {
			k[j] = byte(r.Uint32())
		}
		keys[i] = k
	}
	return keys
}

var benchValue = bytes.Repeat([]byte("v"), 100)

// benchDir is where benchmark state files go: the default state directory
// (memory-backed /dev/shm when present), like production.
func benchDir(b *testing.B) string {
	dir, err := os.MkdirTemp(filepath.Dir(DefaultStateDir()), "whycache-bench")
	if err != nil {
		dir = b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fillState writes keys straight into an instance's state (no log), as
// record ids 1..n, and marks it filled.
func fillState(b *testing.B, c *Instance, keys [][]byte) {
	if err := c.Update(context.Background()); err != nil {
		b.Fatal(err)
	}
	t, err := c.tree()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(keys); i += 1000 {
		bt, err := t.Begin()
		if err != nil {
			b.Fatal(err)
		}
		end := min(i+1000, len(keys))
		bt.Reserve(end - i)
		for j := i; j < end; j++ {
			if _, err := bt.Put(keys[j], benchValue, uint64(j+1)); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

var benchInst struct {
	once sync.Once
	c    *Instance
	keys [][]byte
	dir  string
}

func benchInstance1M(b *testing.B) (*Instance, [][]byte) {
	benchInst.once.Do(func() {
		store, _ := memstore.New(memstore.Options{})
		dir, _ := os.MkdirTemp(filepath.Dir(DefaultStateDir()), "whycache-bench")
		benchInst.dir = dir
		c, err := Open(store, Options{StatePath: filepath.Join(dir, "state")})
		if err != nil {
			b.Fatal(err)
		}
		benchInst.c, benchInst.keys = c, benchKeys(1<<20, 1)
		fillState(b, c, benchInst.keys)
	})
	return benchInst.c, benchInst.keys
}

func TestMain(m *testing.M) {
	code := mariadbtest.Main(m)
	if benchInst.c != nil {
		benchInst.c.Close()
		os.RemoveAll(benchInst.dir)
	}
	os.Exit(code)
}

func benchOrder(n int) []int32 {
	r := rand.New(rand.NewPCG(7, 7))
	idx := make([]int32, 1<<16)
	for i := range idx {
		idx[i] = int32(r.IntN(n))
	}
	return idx
}

// BenchmarkInstanceGet1M: Instance.AppendGet at 1M keys, uniformly random,
// value copied into a reused buffer. Compare with BenchmarkInstanceTreeGet1M
// (the same reads straight on the prefixtree) in the same run.
func BenchmarkInstanceGet1M(b *testing.B) {
	c, keys := benchInstance1M(b)
	order := benchOrder(len(keys))
	buf := make([]byte, 0, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		buf, err = c.AppendGet(buf[:0], keys[order[i&(1<<16-1)]])
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstanceTreeGet1M is the baseline of BenchmarkInstanceGet1M.
func BenchmarkInstanceTreeGet1M(b *testing.B) {
	c, keys := benchInstance1M(b)
	t, _ := c.tree()
	order := benchOrder(len(keys))
	buf := make([]byte, 0, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var found bool
		buf, found, _ = t.AppendGet(buf[:0], keys[order[i&(1<<16-1)]])
		if !found {
			b.Fatal("not found")
		}
	}
}

// commitSingleKeyRecords fills store with n single-key records (16-byte key,
// 100-byte value), committed 1,000 per call.
func commitSingleKeyRecords(b *testing.B, store logstore.Store, keys [][]byte) {
	ctx := context.Background()
	recs := make([]logstore.Record, 0, 1000)
	for i := 0; i < len(keys); i += 1000 {
		recs = recs[:0]
		for _, k := range keys[i:min(i+1000, len(keys))] {
			c, _ := logstore.AppendRecord(nil, []logstore.Item{{Key: k, Value: benchValue}})
			recs = append(recs, logstore.Record{Contents: c, SingleKey: k})
		}
		if _, err := commitLast(ctx, store, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// commitTwoKeyRecords fills store with n records of two items each over
// the live keys (record i sets keys i and i+1, modulo their count), so
// that every key is written 2n/len(live) times and no store drops a
// record on its own (single-key replacement).
func commitTwoKeyRecords(b *testing.B, store logstore.Store, live [][]byte, n int) {
	ctx := context.Background()
	recs := make([]logstore.Record, 0, 1000)
	for i := 0; i < n; i += 1000 {
		recs = recs[:0]
		for j := i; j < min(i+1000, n); j++ {
			c, _ := logstore.AppendRecord(nil, []logstore.Item{
				{Key: live[j%len(live)], Value: benchValue},
				{Key: live[(j+1)%len(live)], Value: benchValue},
			})
			recs = append(recs, logstore.Record{Contents: c})
		}
		if _, err := commitLast(ctx, store, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCatchUp times Update applying every record of the store on a fresh
// state, and reports records/s.
func benchCatchUp(b *testing.B, store logstore.Store, n int) {
	commitSingleKeyRecords(b, store, benchKeys(n, 9))
	dir := benchDir(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := Open(store, Options{StatePath: filepath.Join(dir, fmt.Sprint("state", i))})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Update(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if c.UpdateID() == 0 {
			b.Fatal("nothing applied")
		}
		c.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkCatchUpFile: Update applying 1M single-key records from the file
// store. Run with -benchtime=1x.
func BenchmarkCatchUpFile(b *testing.B) {
	store, err := NewFileStore(filepath.Join(benchDir(b), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	benchCatchUp(b, store, benchKeyCount(1_000_000))
}

// BenchmarkCatchUpMySQL: Update applying 1M single-key records from MySQL
// (WHYCACHE_TEST_DSN). Run with -benchtime=1x.
func BenchmarkCatchUpMySQL(b *testing.B) {
	store, _ := mysqlTestStore(b, MySQLStoreOptions{})
	benchCatchUp(b, store, benchKeyCount(1_000_000))
}

// BenchmarkSnapshot1M: WriteSnapshot and LoadSnapshot of a 1M-key state;
// reports export MB/s and the load (bootstrap) time.
func BenchmarkSnapshot1M(b *testing.B) {
	n := benchKeyCount(1_000_000)
	store, _ := memstore.New(memstore.Options{})
	dir := benchDir(b)
	src, _ := Open(store, Options{StatePath: filepath.Join(dir, "src")})
	defer src.Close()
	fillState(b, src, benchKeys(n, 3))
	var snap bytes.Buffer
	snap.Grow(n * 160) // the snapshot's size, so that the buffer's growth is not measured
	b.ResetTimer()
	var export, load time.Duration
	for i := 0; i < b.N; i++ {
		snap.Reset()
		start := time.Now()
		if _, err := src.WriteSnapshot(&snap); err != nil {
			b.Fatal(err)
		}
		export += time.Since(start)
		dst, _ := Open(store, Options{StatePath: filepath.Join(dir, fmt.Sprint("dst", i))})
		start = time.Now()
		if err := dst.LoadSnapshot(context.Background(), bytes.NewReader(snap.Bytes())); err != nil {
			b.Fatal(err)
		}
		load += time.Since(start)
		dst.Close()
	}
	b.ReportMetric(float64(snap.Len())*float64(b.N)/export.Seconds()/1e6, "export-MB/s")
	b.ReportMetric(load.Seconds()/float64(b.N), "load-s")
	b.ReportMetric(float64(snap.Len())/1e6, "snapshot-MB")
}

// BenchmarkRewriteFile: RewriteHistory of a log of 1M records (two items
// each) over 100k live keys on the file store; reports the time, the
// records before and after, and the process's peak RSS.
func BenchmarkRewriteFile(b *testing.B) {
	store, err := NewFileStore(filepath.Join(benchDir(b), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	benchRewrite(b, store)
}

// BenchmarkRewriteMySQL is BenchmarkRewriteFile on MySQL.
func BenchmarkRewriteMySQL(b *testing.B) {
	store, _ := mysqlTestStore(b, MySQLStoreOptions{})
	benchRewrite(b, store)
}

func benchRewrite(b *testing.B, store logstore.Store) {
	n := benchKeyCount(1_000_000)
	live := benchKeys(max(n/10, 2), 11)
	commitTwoKeyRecords(b, store, live, n)
	c, _ := Open(store, Options{StatePath: filepath.Join(benchDir(b), "state")})
	defer c.Close()
	runtime.GC()
	rss0 := peakRSS()
	b.ResetTimer()
	var st RewriteStats
	for i := 0; i < b.N; i++ {
		var err error
		if st, err = c.RewriteHistoryStats(context.Background(), 0, RewriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.RecordsBefore), "records-before")
	b.ReportMetric(float64(st.RecordsAfter), "records-after")
	b.ReportMetric(float64(peakRSS()-rss0)/(1<<20), "peak-RSS-growth-MiB")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
}

// peakRSS returns the process's peak resident set size in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss * 1024
}
