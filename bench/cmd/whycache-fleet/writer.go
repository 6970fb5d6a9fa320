package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/internal/pace"
)

// write is one Set of the writer.
type write struct {
	n        int       // the key's number: key and value derive from it
	id       uint64    // the record id Set returned
	returned time.Time // when Set returned
	measured bool      // made inside the measured window
}

// key and value of write number n: distinct keys, one per write.
func key(n int) []byte   { return fmt.Appendf(nil, "fleet-%08d", n) }
func value(n int) []byte { return fmt.Appendf(nil, "value-%08d", n) }

// writer commits rate Sets per second of distinct keys through inst (on
// the primary) until stopped, noting when each returned.
type writer struct {
	inst     *whycache.Instance
	rate     int
	measure  atomic.Bool // writes made while set are measured
	stop     chan struct{}
	done     chan struct{}
	writes   []write // owned by the goroutine until done is closed
	errors   int
	firstErr error
}

// startWriter starts writing; write numbers begin at first.
func startWriter(ctx context.Context, inst *whycache.Instance, rate, first int) *writer {
	w := &writer{inst: inst, rate: rate, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(ctx, first)
	return w
}

func (w *writer) run(ctx context.Context, n int) {
	defer close(w.done)
	s := pace.Every(w.rate, 1)
	defer s.Stop()
	for s.Wait(w.stop) {
		measured := w.measure.Load()
		id, err := w.inst.Set(ctx, key(n), value(n))
		if err != nil {
			w.errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			n++
			continue
		}
		w.writes = append(w.writes, write{n: n, id: id, returned: time.Now(), measured: measured && w.measure.Load()})
		n++
	}
}

// finish stops the writer and waits for it.
func (w *writer) finish() {
	close(w.stop)
	<-w.done
}
