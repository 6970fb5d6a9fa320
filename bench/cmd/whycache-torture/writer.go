package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/proc"
)

// roleWriter is the role of writer child processes.
const roleWriter = "writer"

// writerReport is what a writer sends: ready once it has opened the log
// and the state, and its counts when its stdin closes. A writer that is
// killed sends no counts.
type writerReport struct {
	Event   string `json:"event"` // "ready" or "done"
	Ops     uint64 `json:"ops,omitempty"`
	Items   uint64 `json:"items,omitempty"`
	Updates uint64 `json:"updates,omitempty"`
}

// runWriter is a writer child: random Sets, SetMultis, Deletes,
// DeleteMultis and Updates on cfg.keys keys until its stdin closes. Any
// error ends it with a non-zero status and the error on stderr.
func runWriter(cfg config, stdin io.Reader, stdout io.Writer) error {
	store, closeStore, err := cfg.childLog().open()
	if err != nil {
		return err
	}
	defer closeStore()
	inst, err := whycache.Open(store, whycache.Options{StatePath: cfg.state})
	if err != nil {
		return err
	}
	defer inst.Close()
	conn := proc.NewConn(stdin, stdout)
	if err := conn.Send(writerReport{Event: "ready"}); err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		var ignored writerReport
		conn.Recv(&ignored) // EOF (or anything) means stop
		close(stop)
	}()
	w := &writer{inst: inst, rng: rand.New(rand.NewPCG(cfg.seed, ^cfg.seed)), keys: cfg.keys}
	var rep writerReport
	for {
		select {
		case <-stop:
			rep.Event = "done"
			return conn.Send(rep)
		default:
		}
		ctx := context.Background()
		var err error
		if w.rng.IntN(cfg.updateEvery) == 0 {
			err = inst.Update(ctx)
			rep.Updates++
		} else {
			var items int
			items, err = w.step(ctx)
			rep.Items += uint64(items)
		}
		if err != nil {
			return fmt.Errorf("whycache-torture: writer (state %s): %w", cfg.state, err)
		}
		rep.Ops++
	}
}

// writer makes random writes.
type writer struct {
	inst *whycache.Instance
	rng  *rand.Rand
	keys int
}

// step does one random write and returns the number of items written.
func (w *writer) step(ctx context.Context) (int, error) {
	var err error
	switch p := w.rng.IntN(100); {
	case p < 50:
		_, err = w.inst.Set(ctx, w.key(), w.value())
		return 1, err
	case p < 80:
		items := make([]whycache.Item, 2+w.rng.IntN(40))
		for i := range items {
			items[i] = whycache.Item{Key: w.key(), Value: w.value()}
		}
		_, err = w.inst.SetMulti(ctx, items)
		return len(items), err
	case p < 92:
		_, err = w.inst.Delete(ctx, w.key())
		return 1, err
	default:
		keys := make([][]byte, 2+w.rng.IntN(10))
		for i := range keys {
			keys[i] = w.key()
		}
		_, err = w.inst.DeleteMulti(ctx, keys)
		return len(keys), err
	}
}

func (w *writer) key() []byte { return fmt.Appendf(nil, "k%05d", w.rng.IntN(w.keys)) }

// value returns 0 to 300 random bytes (empty values included: they are
// values, not deletes).
func (w *writer) value() []byte {
	v := make([]byte, w.rng.IntN(301))
	for i := range v {
		v[i] = byte(w.rng.Uint32())
	}
	return v
}
