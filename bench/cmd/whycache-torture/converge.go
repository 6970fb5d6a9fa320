package main

import (
	"context"
	"fmt"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/proc"
)

// Shape of the convergence scenario.
const (
	convergeMachines = 2 // state files
	convergeWriters  = 2 // writer processes per state file
)

// convergenceScenario runs convergeWriters writer processes on each of
// convergeMachines state files, all on one log, for d, then stops them
// (each reports its counts) and checks that every state equals the log
// replay.
func convergenceScenario(ctx context.Context, t *torture, n int, d time.Duration) (string, error) {
	log, dir, cleanup, err := newRunFiles(ctx, t.cfg, "converge", n)
	if err != nil {
		return "", err
	}
	defer cleanup()
	states, err := newStates(ctx, dir, log, convergeMachines)
	if err != nil {
		return "", err
	}

	var writers []*proc.Child
	defer func() {
		for _, c := range writers {
			c.Kill()
		}
	}()
	for _, state := range states {
		for range convergeWriters {
			c, err := t.startWriter(ctx, state, log)
			if err != nil {
				return "", err
			}
			writers = append(writers, c)
		}
	}
	if !sleep(ctx, d) {
		return "", ctx.Err()
	}
	var total writerReport
	for _, c := range writers {
		c.Send(writerReport{Event: "stop"})
		var r writerReport
		if err := c.Recv(&r); err != nil {
			return "", err
		}
		if err := c.Finish(); err != nil {
			return "", err
		}
		total.Ops += r.Ops
		total.Items += r.Items
		total.Updates += r.Updates
	}

	insts := map[string]*whycache.Instance{}
	for m, state := range states {
		inst, closeInst, err := openState(ctx, state, log, false)
		if err != nil {
			return "", err
		}
		defer closeInst()
		insts[fmt.Sprintf("machine%d", m+1)] = inst
	}
	records, keys, err := checkStates(ctx, insts["machine1"].Store(), insts)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d writers on %d states: %d operations (%d items, %d Updates), %d records, %d×%d keys compared",
		len(writers), len(states), total.Ops, total.Items, total.Updates, records, len(states), keys), nil
}
