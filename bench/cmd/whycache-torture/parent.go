package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/bench/internal/proc"
)

// scenarioNames are the names --scenarios accepts.
var scenarioNames = []string{"crash", "convergence", "outage", "faults"}

// minSlice is the shortest scenario run; once every scenario has run, a
// shorter remainder of --for ends the loop.
const minSlice = time.Second

// scenario is one reliability scenario. run works for about d and returns
// a line describing what it tried, or an error if something was lost or
// broke.
type scenario struct {
	name string
	run  func(ctx context.Context, t *torture, n int, d time.Duration) (string, error)
}

// torture is the state of the parent: configuration, executable, random
// source.
type torture struct {
	cfg config
	exe string
	rng *rand.Rand
}

// runParent runs the scenarios in turn until cfg.total has passed (and
// each at least once), prints a line per run and a summary, and returns
// the number of failed runs.
func runParent(ctx context.Context, cfg config, stdout io.Writer) (failed int, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("whycache-torture: cannot re-execute myself: %w", err)
	}
	t := &torture{cfg: cfg, exe: exe, rng: newRand(cfg.seed)}
	var scenarios []scenario
	for _, sc := range []scenario{{"crash", crashScenario}, {"convergence", convergenceScenario}, {"outage", outageScenario}, {"faults", faultsScenario}} {
		if (sc.name != "outage" || cfg.store == storeMySQL) && (len(cfg.scenarios) == 0 || slices.Contains(cfg.scenarios, sc.name)) {
			scenarios = append(scenarios, sc)
		}
	}

	fmt.Fprintf(stdout, "whycache-torture: %s store, for %v, runs of %v, seed %d\n", cfg.store, cfg.total, cfg.slice, cfg.seed)
	start := time.Now()
	deadline := start.Add(cfg.total)
	passed := 0
	for n := 0; ctx.Err() == nil; n++ {
		// Every scenario runs at least once, however short --for is.
		left := time.Until(deadline)
		if left < minSlice && n >= len(scenarios) {
			break
		}
		left = max(left, minSlice)
		sc := scenarios[n%len(scenarios)]
		runNo := n/len(scenarios) + 1
		t0 := time.Now()
		line, err := sc.run(ctx, t, runNo, min(cfg.slice, left))
		head := fmt.Sprintf("%-11s #%-3d %5.1fs", sc.name, runNo, time.Since(t0).Seconds())
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(stdout, "%s interrupted\n", head)
				break
			}
			failed++
			fmt.Fprintf(stdout, "%s FAILED: %v\n", head, err)
			continue
		}
		passed++
		fmt.Fprintf(stdout, "%s %s: ok\n", head, line)
	}
	verdict := "nothing lost"
	if failed > 0 {
		verdict = "FAILURES above"
	}
	if ctx.Err() != nil {
		verdict += " (interrupted)"
	}
	fmt.Fprintf(stdout, "whycache-torture: %d scenario runs in %.1fs; %s\n", passed+failed, time.Since(start).Seconds(), verdict)
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if ctx.Err() != nil && failed == 0 {
		return 0, fmt.Errorf("whycache-torture: interrupted")
	}
	return failed, nil
}

// startWriter starts a writer child on state and log and waits until it
// is ready.
func (t *torture) startWriter(ctx context.Context, state string, log logRef) (*proc.Child, error) {
	args := append([]string{"--role", roleWriter, "--state", state, "--seed", strconv.FormatUint(t.rng.Uint64(), 10)}, log.flags()...)
	c, err := proc.Start(ctx, "writer "+filepath.Base(state), t.exe, args, append(log.env(), childEnv+"=1"))
	if err != nil {
		return nil, err
	}
	c.Timeout = time.Minute
	var r writerReport
	if err := c.Recv(&r); err != nil {
		return nil, err
	}
	return c, nil
}

// openState opens an instance on state and log, and with fill brings it
// up to date with an Update.
func openState(ctx context.Context, state string, log logRef, fill bool) (*whycache.Instance, func(), error) {
	store, closeStore, err := log.open()
	if err != nil {
		return nil, nil, err
	}
	inst, err := whycache.Open(store, whycache.Options{StatePath: state})
	if err == nil && fill {
		err = inst.Update(ctx)
	}
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return inst, func() { inst.Close(); closeStore() }, nil
}

// sleep waits for d or until ctx ends, and reports whether d passed. It
// paces the scenarios (random kill and cut instants); it never stands in
// for synchronization.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// newRand returns a random source seeded with seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed>>1)) }

// randomDuration returns a duration uniformly in [lo, hi).
func (t *torture) randomDuration(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(t.rng.Int64N(int64(hi-lo)))
}
