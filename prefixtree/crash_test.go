package prefixtree

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// torture reports whether the long variants of the process tests run
// (WHYCACHE_TORTURE=1).
func torture() bool { return os.Getenv("WHYCACHE_TORTURE") == "1" }

// workload describes the batches of one writer. Batch i (from 1) depends
// only on (Seed, Writer, i), so a parent can replay into a model exactly
// what a child process committed. Ids grow with the batch number, so every
// write applies. Writers with different Writer numbers use disjoint keys.
type workload struct {
	Seed      uint64
	Writer    int // key space "w<Writer>/"; meta word Writer holds the last committed batch
	Keys      int // number of keys in the key space
	MaxOps    int // writes per batch: 1..MaxOps
	MinValue  int // payload sizes are uniform in [MinValue, MaxValue]
	MaxValue  int
	DeletePct int // percent of writes that are deletes
	PurgePct  int // percent of batches that also purge tombstones of earlier batches
}

// writeOp is one write of a batch.
type writeOp struct {
	key  string
	id   uint64
	del  bool
	size int // payload bytes of a put
}

// key returns key n of the workload; keys share prefixes longer than the
// tree's 8-byte slot prefixes and vary in length.
func (w workload) key(n int) string {
	return fmt.Sprintf("w%d/%04x/%s", w.Writer, n, strings.Repeat("k", n%23))
}

func (w workload) keys() []string {
	out := make([]string, w.Keys)
	for n := range out {
		out[n] = w.key(n)
	}
	return out
}

func allKeys(ws []workload) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.keys()...)
	}
	return out
}

// batch returns the writes of batch i and the id up to which it purges
// tombstones (0: no purge).
func (w workload) batch(i uint64) (ops []writeOp, purge uint64) {
	r := rand.New(rand.NewPCG(w.Seed, uint64(w.Writer)<<40|i))
	ops = make([]writeOp, 1+r.IntN(w.MaxOps))
	for j := range ops {
		op := writeOp{key: w.key(r.IntN(w.Keys)), id: i*uint64(w.MaxOps) + uint64(j) + 1}
		if r.IntN(100) < w.DeletePct {
			op.del = true
		} else {
			op.size = w.MinValue + r.IntN(w.MaxValue-w.MinValue+1)
		}
		ops[j] = op
	}
	if r.IntN(100) < w.PurgePct {
		purge = i * uint64(w.MaxOps)
	}
	return ops, purge
}

// commit writes batch i to tr as one Batch, recording i in meta word
// Writer.
func (w workload) commit(tr *Tree, i uint64) error {
	ops, purge := w.batch(i)
	b, err := tr.Begin()
	if err != nil {
		return err
	}
	for _, op := range ops {
		var applied bool
		if op.del {
			applied, err = b.Delete([]byte(op.key), op.id)
		} else {
			applied, err = b.Put([]byte(op.key), makeValue(op.key, op.id, op.size), op.id)
		}
		if err == nil && !applied {
			err = fmt.Errorf("write of %q with id %d not applied", op.key, op.id)
		}
		if err != nil {
			b.Rollback()
			return fmt.Errorf("batch %d: %w", i, err)
		}
	}
	if purge != 0 {
		if _, err := b.PurgeTombstones(purge); err != nil {
			b.Rollback()
			return fmt.Errorf("batch %d: %w", i, err)
		}
	}
	if err := b.SetMeta(w.Writer, i); err != nil {
		b.Rollback()
		return err
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("batch %d: %w", i, err)
	}
	return nil
}

// commitRange commits batches from..to.
func (w workload) commitRange(tr *Tree, from, to uint64) error {
	for i := from; i <= to; i++ {
		if err := w.commit(tr, i); err != nil {
			return err
		}
	}
	return nil
}

// replay applies batch i to the model.
func (w workload) replay(m *model, i uint64) {
	ops, purge := w.batch(i)
	for _, op := range ops {
		if op.del {
			m.del(op.key, op.id)
		} else {
			m.put(op.key, makeValue(op.key, op.id, op.size), op.id)
		}
	}
	if purge == 0 {
		return
	}
	for k := range m.dead {
		if m.ids[k] <= purge {
			delete(m.dead, k)
			delete(m.ids, k)
		}
	}
}

// runCrasherRole commits batches after the last committed one, printing
// each batch number after its Commit, until it is killed.
func runCrasherRole(tr *Tree, a helperArgs, stop <-chan struct{}) error {
	w := a.Work[0]
	// Begin repairs whatever a killed predecessor left, so the batch
	// counter read next is committed state.
	b, err := tr.Begin()
	if err != nil {
		return err
	}
	b.Rollback()
	say("ready")
	for i := tr.Meta(w.Writer) + 1; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := w.commit(tr, i); err != nil {
			return err
		}
		say("%d", i)
	}
}

// TestCrashRecovery kills a writer process at random instants, over and
// over on the same file. After each kill the file must pass Check, hold
// exactly the batches the child reported (or one more: the batch in flight
// may have committed before its report), and accept a write at once.
func TestCrashRecovery(t *testing.T) {
	iterations := 24
	if torture() {
		iterations = 500
	}
	path := filepath.Join(t.TempDir(), "state")
	tr, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	w := workload{Seed: 31, Writer: 0, Keys: 1500, MaxOps: 24, MaxValue: 4096, DeletePct: 20, PurgePct: 3}
	m := newModel()
	r := rand.New(rand.NewPCG(32, 32))
	var replayed uint64 // batches replayed into m: all committed so far
	repaired, inFlight := 0, 0
	for it := 0; it < iterations; it++ {
		c := startChild(t, helperArgs{Role: "crasher", Path: path, Work: []workload{w}})
		if _, err := c.expect("ready"); err != nil {
			t.Fatal(err)
		}
		var lines []string
		if it%2 == 0 {
			for n := 1 + r.IntN(20); len(lines) < n; {
				l, err := c.line()
				if err != nil {
					t.Fatal(err)
				}
				lines = append(lines, l)
			}
		} else {
			time.Sleep(time.Duration(r.IntN(30_001)) * time.Microsecond)
		}
		lines = append(lines, c.kill()...)
		reported := replayed
		for _, l := range lines {
			n, err := strconv.ParseUint(l, 10, 64)
			if err != nil || n != reported+1 {
				t.Fatalf("iteration %d: crasher printed %q after batch %d", it, l, reported)
			}
			reported = n
		}

		tr, err := Open(path, Options{NoCreate: true})
		if err != nil {
			t.Fatalf("iteration %d: open after kill: %v", it, err)
		}
		before := tr.File().Stats().Recoveries
		if err := tr.Check(); err != nil {
			t.Fatalf("iteration %d: Check after kill: %v", it, err)
		}
		if tr.File().Stats().Recoveries > before {
			repaired++
		}
		committed := tr.Meta(w.Writer)
		switch committed {
		case reported:
		case reported + 1:
			inFlight++
		default:
			t.Fatalf("iteration %d: file holds %d batches, child reported %d", it, committed, reported)
		}
		for replayed < committed {
			replayed++
			w.replay(m, replayed)
		}
		compareWithModel(t, tr, m)
		probe := fmt.Sprintf("probe/%d", it)
		if _, err := tr.Put([]byte(probe), makeValue(probe, 1, 64), 1); err != nil {
			t.Fatalf("iteration %d: write after kill: %v", it, err)
		}
		m.put(probe, makeValue(probe, 1, 64), 1)
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills, %d batches committed, %d kills repaired a transaction in progress, %d in-flight batches committed before their report",
		iterations, replayed, repaired, inFlight)
}

// runHolderRole begins a batch, changes the map, reports "holding" and
// waits (to be killed) with the writer lock held and the counter odd.
func runHolderRole(tr *Tree, a helperArgs, stop <-chan struct{}) error {
	b, err := tr.Begin()
	if err != nil {
		return err
	}
	for i := uint64(0); i < 100; i++ {
		k := fmt.Sprintf("held/%d", i)
		if _, err := b.Put([]byte(k), makeValue(k, 2, 5000), 2); err != nil {
			return err
		}
	}
	say("holding")
	<-stop
	return b.Rollback()
}

// runSpinReaderRole reads "held/0", checks that the read cannot finish
// while the holder lives, reports "spinning", and prints the version it
// finally reads.
func runSpinReaderRole(tr *Tree, a helperArgs, stop <-chan struct{}) error {
	type result struct {
		v   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := tr.Get([]byte("held/0"))
		done <- result{v, err}
	}()
	select {
	case res := <-done:
		return fmt.Errorf("Get returned (%v) while a live writer held the file mid-batch", res.err)
	case <-time.After(100 * time.Millisecond):
	}
	say("spinning")
	res := <-done
	if res.err != nil {
		return res.err
	}
	version, err := checkValue("held/0", res.v)
	if err != nil {
		return err
	}
	say("version %d", version)
	return nil
}

// TestKillWriterWhileReaderSpins kills a writer process that holds the
// lock mid-batch while a reader process waits on the odd counter: the
// reader must repair the file by itself and read the committed value.
func TestKillWriterWhileReaderSpins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	tr, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Put([]byte("held/0"), makeValue("held/0", 1, 100), 1); err != nil {
		t.Fatal(err)
	}
	tr.Close()

	holder := startChild(t, helperArgs{Role: "holder", Path: path})
	if _, err := holder.expect("holding"); err != nil {
		t.Fatal(err)
	}
	reader := startChild(t, helperArgs{Role: "spinreader", Path: path})
	if _, err := reader.expect("spinning"); err != nil {
		t.Fatal(err)
	}
	holder.kill()
	version, err := reader.expect("version ")
	if err != nil {
		t.Fatal(err)
	}
	if version != "1" {
		t.Fatalf("reader read version %s after the kill, want the committed 1", version)
	}
	if _, err := reader.finish(); err != nil {
		t.Fatal(err)
	}

	tr, err = Open(path, Options{NoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := tr.File().Stats().Recoveries; got != 1 {
		t.Fatalf("recoveries = %d, want 1 (by the reader process)", got)
	}
	m := newModel()
	m.put("held/0", makeValue("held/0", 1, 100), 1)
	compareWithModel(t, tr, m)
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Put([]byte("after"), []byte("x"), 1); err != nil {
		t.Fatal(err)
	}
}
