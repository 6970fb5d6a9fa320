package main

import (
	"bufio"
	"fmt"
	"github.com/whycache/whycache/internal/pace"
	"io"
	"math/bits"
	"math/rand/v2"
	"time"

	"github.com/whycache/whycache/prefixtree"
)

// maxWriteBatch bounds --write-batch: a batch holds the seqlock for its
// whole length, so huge ones would only measure stalls.
const maxWriteBatch = 100000

// runWriter is the writer child: once started (beginRole), it overwrites
// random keys at cfg.writeRate keys/s until the parent sends stop (or
// closes stdin) and reports what it wrote.
func runWriter(cfg config, stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewScanner(stdin)
	tr, keys, err := beginRole(cfg, in, stdout)
	if err != nil {
		return err
	}
	defer tr.Close()
	stop := make(chan struct{})
	go func() {
		in.Scan() // cmdStop, or EOF when the parent went away
		close(stop)
	}()
	w := newWriter(tr, keys, cfg.seed)
	u := readCPUStat()
	st, err := w.loop(cfg.writeRate, cfg.writeBatch, stop)
	if err != nil {
		return err
	}
	u = u.since()
	return send(stdout, message{
		Event:           eventResult,
		Seconds:         st.elapsed.Seconds(),
		CPUSeconds:      u.cpu.Seconds(),
		Preempts:        u.preempts,
		WriteKeys:       st.keys,
		WriteDueKeys:    st.due,
		WriteBatches:    st.batches,
		WriteBusySecs:   st.busy.Seconds(),
		WriteMaxBatchUs: float64(st.maxBatch) / float64(time.Microsecond),
	})
}

// writer overwrites random workload keys with new values under increasing
// record ids.
type writer struct {
	tr     *prefixtree.Tree
	keys   []byte
	n      uint64
	rng    *rand.PCG
	value  []byte
	lastID uint64 // the last id written; stored in meta word metaLastID

	batchKeys [][]byte // keys of the batch being written
}

func newWriter(tr *prefixtree.Tree, keys []byte, seed uint64) *writer {
	n := uint64(len(keys) / keyLen)
	return &writer{
		tr:     tr,
		keys:   keys,
		n:      n,
		rng:    rand.NewPCG(seed, ^seed),
		value:  make([]byte, valueLen),
		lastID: max(tr.Meta(metaLastID), n),
	}
}

// writeStats is what a writer did.
type writeStats struct {
	keys, batches uint64
	due           uint64        // keys the schedule called for by stop
	elapsed       time.Duration // from start to stop
	busy          time.Duration // inside batches (Begin to Commit)
	maxBatch      time.Duration // longest batch
}

// loop writes a batch of batch keys at the end of every batch/rate seconds
// until stop is closed. A writer that falls behind schedule writes its late
// batches back to back until it has caught up.
func (w *writer) loop(rate, batch int, stop <-chan struct{}) (writeStats, error) {
	var st writeStats
	sched := pace.Every(rate, batch)
	defer sched.Stop()
	for sched.Wait(stop) {
		t0 := time.Now()
		if err := w.batch(batch); err != nil {
			return st, err
		}
		dt := time.Since(t0)
		st.keys += uint64(batch)
		st.batches++
		st.busy += dt
		st.maxBatch = max(st.maxBatch, dt)
	}
	st.elapsed = sched.Elapsed()
	st.due = uint64(st.elapsed/sched.Interval()) * uint64(batch)
	return st, nil
}

// batch overwrites count random keys in one transaction. Like the
// library's own apply paths, it warms the keys before the transaction so
// that readers wait less.
func (w *writer) batch(count int) error {
	w.batchKeys = w.batchKeys[:0]
	for range count {
		i, _ := bits.Mul64(w.rng.Uint64(), w.n)
		w.batchKeys = append(w.batchKeys, key(w.keys, i))
	}
	w.tr.Warm(w.batchKeys...)
	b, err := w.tr.Begin()
	if err != nil {
		return fmt.Errorf("whycache-readbench: write: %w", err)
	}
	for _, k := range w.batchKeys {
		w.lastID++
		fillValue(w.value, w.lastID)
		applied, err := b.Put(k, w.value, w.lastID)
		if err == nil && !applied {
			err = fmt.Errorf("key %x holds a record newer than id %d", k, w.lastID)
		}
		if err != nil {
			b.Rollback()
			return fmt.Errorf("whycache-readbench: write: %w", err)
		}
	}
	if err := b.SetMeta(metaLastID, w.lastID); err != nil {
		b.Rollback()
		return fmt.Errorf("whycache-readbench: write: %w", err)
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("whycache-readbench: write: %w", err)
	}
	return nil
}

// fillValue makes v a value that differs for every id.
func fillValue(v []byte, id uint64) {
	for i := range v {
		v[i] = byte(id >> (8 * (i % 8)))
	}
}
