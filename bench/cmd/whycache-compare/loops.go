package main

import (
	"fmt"
	"github.com/whycache/whycache/internal/pace"
	"time"

	"github.com/whycache/whycache/bench/internal/peers"
	"github.com/whycache/whycache/bench/internal/workload"
)

// readsPerClockCheck is how many reads happen between looks at the clock.
const readsPerClockCheck = 256

// readLoop gets uniformly random keys among the first n of keys, with a
// reused buffer, until d has passed. Every key must be found with a value
// of workload.ValueLen bytes: a system that lost a key fails the run
// rather than looking fast.
func readLoop(c peers.Conn, keys []byte, n int, seed uint64, d time.Duration) (reads uint64, elapsed time.Duration, err error) {
	pick := workload.NewPicker(n, seed)
	buf := make([]byte, 0, 2*workload.ValueLen)
	start := time.Now()
	for {
		for range readsPerClockCheck {
			i := pick.Next()
			var found bool
			buf, found, err = c.Get(buf[:0], workload.Key(keys, i))
			if err != nil {
				return reads, time.Since(start), fmt.Errorf("whycache-compare: read key %d: %w", i, err)
			}
			if !found || len(buf) != workload.ValueLen {
				return reads, time.Since(start), fmt.Errorf("whycache-compare: key %d: found=%v with a value of %d bytes, want %d", i, found, len(buf), workload.ValueLen)
			}
		}
		reads += readsPerClockCheck
		if elapsed = time.Since(start); elapsed >= d {
			return reads, elapsed, nil
		}
	}
}

// writeLoop overwrites random keys with new versions of their values, a
// batch of batch keys every batch/rate seconds, until stop is closed. A
// writer behind schedule writes its late batches back to back. It returns
// the keys written and the time from start to stop.
func writeLoop(c peers.Conn, keys []byte, rate, batch int, seed uint64, stop <-chan struct{}) (written uint64, elapsed time.Duration, err error) {
	pick := workload.NewPicker(workload.Count(keys), seed)
	version := seed << 32
	var b workload.Batch
	sched := pace.Every(rate, batch)
	defer sched.Stop()
	for sched.Wait(stop) {
		b.Reset()
		for range batch {
			version++
			b.Add(workload.Key(keys, pick.Next()), version)
		}
		if err := c.Put(&b); err != nil {
			return written, sched.Elapsed(), fmt.Errorf("whycache-compare: write: %w", err)
		}
		written += uint64(batch)
	}
	return written, sched.Elapsed(), nil
}

// load writes every key with version 0 in batches of batch keys.
func load(c peers.Conn, keys []byte, batch int) error {
	var b workload.Batch
	n := workload.Count(keys)
	for i := 0; i < n; i += batch {
		b.Reset()
		for j := i; j < min(i+batch, n); j++ {
			b.Add(workload.Key(keys, j), 0)
		}
		if err := c.Put(&b); err != nil {
			return fmt.Errorf("whycache-compare: load: %w", err)
		}
	}
	return nil
}
