package main

import (
	"bufio"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/whycache/whycache/prefixtree"
)

// readsPerClockCheck is how many reads a reader does between looks at the
// clock.
const readsPerClockCheck = 256

// runReader is the reader child: once started (beginRole), it reads for
// cfg.duration and reports its read count.
//
// A reader runs with GOMAXPROCS 1: its one goroutine then stays on one
// thread, whose scheduler statistics are the reads' own (cpuStat).
func runReader(cfg config, stdin io.Reader, stdout io.Writer) error {
	runtime.GOMAXPROCS(1)
	tr, keys, err := beginRole(cfg, bufio.NewScanner(stdin), stdout)
	if err != nil {
		return err
	}
	defer tr.Close()
	u := readCPUStat()
	reads, elapsed, err := readLoop(tr, keys, cfg.seed, cfg.duration)
	if err != nil {
		return err
	}
	u = u.since()
	return send(stdout, message{
		Event:      eventResult,
		Reads:      reads,
		Seconds:    elapsed.Seconds(),
		CPUSeconds: u.cpu.Seconds(),
		BusyRun:    u.busyRun.Seconds(),
		BusyRunq:   u.busyWait.Seconds(),
		BusyOK:     u.busyOK,
		Sleeps:     u.sleeps,
		Preempts:   u.preempts,
	})
}

// readLoop looks up uniformly random workload keys with AppendGet into a
// reused buffer until d has passed, and returns the number of reads and
// the time they took. Every key must be found with a value of valueLen
// bytes.
func readLoop(tr *prefixtree.Tree, keys []byte, seed uint64, d time.Duration) (uint64, time.Duration, error) {
	n := uint64(len(keys) / keyLen)
	rng := rand.NewPCG(seed, ^seed)
	buf := make([]byte, 0, 2*valueLen)
	var reads uint64
	start := time.Now()
	for {
		for range readsPerClockCheck {
			i, _ := bits.Mul64(rng.Uint64(), n)
			var found bool
			var err error
			buf, found, err = tr.AppendGet(buf[:0], key(keys, i))
			if err != nil {
				return reads, time.Since(start), fmt.Errorf("whycache-readbench: read: %w", err)
			}
			if !found || len(buf) != valueLen {
				return reads, time.Since(start), fmt.Errorf("whycache-readbench: workload key %d: found=%v, value of %d bytes", i, found, len(buf))
			}
		}
		reads += readsPerClockCheck
		if elapsed := time.Since(start); elapsed >= d {
			return reads, elapsed, nil
		}
	}
}
