package main

import (
	"context"
	"fmt"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/proc"
)

// crashWriters is the number of writer processes killed and restarted.
const crashWriters = 2

// crashScenario runs crashWriters writers on one state and log for d,
// killing one of them with SIGKILL at random instants (1 to 150 ms apart)
// and starting a new one in its place. Then every writer is killed, and
// the state must pass Check, catch up with Update and equal the log
// replay. A writer that reported an error before it was killed fails the
// run.
func crashScenario(ctx context.Context, t *torture, n int, d time.Duration) (string, error) {
	log, dir, cleanup, err := newRunFiles(ctx, t.cfg, "crash", n)
	if err != nil {
		return "", err
	}
	defer cleanup()
	states, err := newStates(ctx, dir, log, 1)
	if err != nil {
		return "", err
	}
	state := states[0]

	writers := make([]*proc.Child, crashWriters)
	defer func() {
		for _, c := range writers {
			if c != nil {
				c.Kill()
			}
		}
	}()
	for i := range writers {
		if writers[i], err = t.startWriter(ctx, state, log); err != nil {
			return "", err
		}
	}
	kills := 0
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !sleep(ctx, t.randomDuration(time.Millisecond, 150*time.Millisecond)) {
			return "", ctx.Err()
		}
		i := t.rng.IntN(len(writers))
		if err := killWriter(writers[i]); err != nil {
			return "", err
		}
		kills++
		if writers[i], err = t.startWriter(ctx, state, log); err != nil {
			return "", err
		}
	}
	for i, c := range writers {
		if err := killWriter(c); err != nil {
			return "", err
		}
		writers[i] = nil
	}
	kills += crashWriters

	inst, closeInst, err := openState(ctx, state, log, false)
	if err != nil {
		return "", err
	}
	defer closeInst()
	records, keys, err := checkStates(ctx, inst.Store(), map[string]*whycache.Instance{"machine1": inst})
	if err != nil {
		return "", err
	}
	st, err := inst.Stats(nil)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d kills of %d writers, %d records, %d dead writers' transactions repaired, %d keys compared",
		kills, crashWriters, records, st.Recoveries, keys), nil
}

// killWriter kills a writer with SIGKILL and fails if it had already
// reported an error (anything on its stderr).
func killWriter(c *proc.Child) error {
	c.Kill()
	if msg := c.Stderr(); msg != "" {
		return fmt.Errorf("whycache-torture: %s (pid %d) failed before it was killed: %s", c.Name, c.Pid(), msg)
	}
	return nil
}
