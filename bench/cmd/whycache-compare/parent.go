package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/whycache/whycache/bench/internal/peers"
	"github.com/whycache/whycache/bench/internal/proc"
)

// childTimeout bounds how long the parent waits for any message of a
// child (a load of millions of keys included).
const childTimeout = 10 * time.Minute

// roundResult is what one round measured on one system.
type roundResult struct {
	values       map[string]float64 // workload id -> figure
	writesPerSec float64            // writer's achieved rate in the get-writes phase
}

// runParent checks prerequisites, runs every round on every system and
// writes the report files. Progress goes to stderr, the Markdown report to
// stdout.
func runParent(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("whycache-compare: cannot re-execute myself: %w", err)
	}
	systems, skipped, err := prepareSystems(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	res := newResults(cfg, systems, skipped)
	fmt.Fprintf(stderr, "whycache-compare: %d keys, %d rounds, %v per read phase; systems: %s\n",
		cfg.keys, cfg.rounds, cfg.duration, strings.Join(names(systems), ", "))
	runs := make([][]roundResult, len(systems))
	for round := range cfg.rounds {
		for k := range systems {
			i := (k + round) % len(systems) // rotate the order from round to round
			rr, err := runRound(ctx, exe, cfg, systems[i], round)
			if err != nil {
				return fmt.Errorf("%w (round %d, %s)", err, round+1, systems[i].Info().Name)
			}
			runs[i] = append(runs[i], rr)
			fmt.Fprintf(stderr, "round %d/%d %-10s %s\n", round+1, cfg.rounds, systems[i].Info().Name, progressLine(rr))
		}
	}
	res.finish(runs)
	if err := res.write(cfg.out); err != nil {
		return err
	}
	fmt.Fprint(stdout, res.markdown())
	fmt.Fprintf(stderr, "wrote %s/results.md, results.png, results.json in %.0fs\n", cfg.out, res.Seconds)
	return nil
}

// names returns the systems' names.
func names(systems []peers.System) []string {
	var out []string
	for _, s := range systems {
		out = append(out, s.Info().Name)
	}
	return out
}

// runRound measures every workload once on sys, in a fresh directory
// with a fresh server: a loader process loads and then reads (hot set,
// random, while writing), then two reader processes read at once.
func runRound(ctx context.Context, exe string, cfg config, sys peers.System, round int) (rr roundResult, err error) {
	info := sys.Info()
	dir, err := os.MkdirTemp(cfg.workDir, "whycache-compare-"+info.Name+"-")
	if err != nil {
		return rr, fmt.Errorf("whycache-compare: %w", err)
	}
	defer os.RemoveAll(dir)
	env, stop, err := sys.Start(ctx, dir)
	if err != nil {
		return rr, err
	}
	defer stop()
	envJSON, err := json.Marshal(env)
	if err != nil {
		return rr, fmt.Errorf("whycache-compare: %w", err)
	}
	spawn := func(mode peers.Mode, seed uint64) (*proc.Child, reply, error) {
		return spawnChild(ctx, exe, cfg, info.Name, mode, string(envJSON), seed)
	}
	seed := uint64(round)*1000 + 1
	rr.values = map[string]float64{}

	loader, ready, err := spawn(peers.ModeLoad, seed)
	if err != nil {
		return rr, err
	}
	defer loader.Kill()
	rr.values[wLoad] = float64(ready.LoadKeys) / ready.LoadSeconds
	rr.values[wMemory] = float64(ready.FootprintBytes) / float64(ready.LoadKeys)

	secs := cfg.duration.Seconds()
	for _, ph := range []struct {
		id  string
		hot int
	}{{wGet, 0}, {wGetHot, hotCount}} {
		r, err := ask(loader, command{Op: opRead, Seconds: secs, Hot: ph.hot, Seed: seed + 10})
		if err != nil {
			return rr, err
		}
		rr.values[ph.id] = float64(r.Reads) / r.ReadSeconds
	}

	r, w, err := readWhileWriting(loader, spawn, cfg, info.WriterProcess, seed+20)
	if err != nil {
		return rr, err
	}
	rr.values[wWrites] = float64(r.Reads) / r.ReadSeconds
	rr.writesPerSec = float64(w.Writes) / w.WriteSeconds
	if err := loader.Finish(); err != nil {
		return rr, err
	}

	perSec, err := readTogether(spawn, 2, secs, seed+30)
	if err != nil {
		return rr, err
	}
	rr.values[wGet2] = perSec
	return rr, nil
}

// readWhileWriting runs the get-writes phase on the loader: with a writer
// process when the system allows one, else with a writer goroutine in the
// loader. It returns the reader's and the writer's results.
func readWhileWriting(loader *proc.Child, spawn func(peers.Mode, uint64) (*proc.Child, reply, error), cfg config, writerProcess bool, seed uint64) (r, w reply, err error) {
	read := command{Op: opRead, Seconds: cfg.duration.Seconds(), Seed: seed}
	if !writerProcess {
		read.WriteRate, read.WriteBatch = cfg.writeRate, cfg.writeBatch
		r, err = ask(loader, read)
		return r, r, err
	}
	writer, _, err := spawn(peers.ModeWrite, seed+1)
	if err != nil {
		return r, w, err
	}
	defer writer.Kill()
	if err := writer.Send(command{Op: opWrite, WriteRate: cfg.writeRate, WriteBatch: cfg.writeBatch, Seed: seed + 2}); err != nil {
		return r, w, err
	}
	if r, err = ask(loader, read); err != nil {
		return r, w, err
	}
	if err := writer.Send(command{Op: opStop}); err != nil {
		return r, w, err
	}
	if err := writer.Recv(&w); err != nil {
		return r, w, err
	}
	return r, w, writer.Finish()
}

// readTogether starts n reader processes, starts their reads at once and
// returns their reads per second added up.
func readTogether(spawn func(peers.Mode, uint64) (*proc.Child, reply, error), n int, secs float64, seed uint64) (float64, error) {
	readers := make([]*proc.Child, 0, n)
	defer func() {
		for _, c := range readers {
			c.Kill()
		}
	}()
	for i := range n {
		c, _, err := spawn(peers.ModeRead, seed+uint64(i))
		if err != nil {
			return 0, err
		}
		readers = append(readers, c)
	}
	for i, c := range readers {
		if err := c.Send(command{Op: opRead, Seconds: secs, Seed: seed + uint64(10+i)}); err != nil {
			return 0, err
		}
	}
	var total float64
	for _, c := range readers {
		var r reply
		if err := c.Recv(&r); err != nil {
			return 0, err
		}
		total += float64(r.Reads) / r.ReadSeconds
		if err := c.Finish(); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// spawnChild starts a child process on a system and waits for it to be
// ready.
func spawnChild(ctx context.Context, exe string, cfg config, system string, mode peers.Mode, env string, seed uint64) (*proc.Child, reply, error) {
	args := []string{
		"--role", "child", "--system", system, "--mode", string(mode), "--env", env,
		"--keys", strconv.Itoa(cfg.keys), "--load-batch", strconv.Itoa(cfg.loadBatch),
		"--seed", strconv.FormatUint(seed, 10),
	}
	c, err := proc.Start(ctx, system+" "+string(mode), exe, args, []string{childEnv + "=1"})
	if err != nil {
		return nil, reply{}, err
	}
	c.Timeout = childTimeout
	var ready reply
	if err := c.Recv(&ready); err != nil {
		return nil, ready, err
	}
	if ready.Event != eventReady {
		c.Kill()
		return nil, ready, fmt.Errorf("whycache-compare: %s %s sent %q, want %q", system, mode, ready.Event, eventReady)
	}
	return c, ready, nil
}

// ask sends a command and returns the child's result.
func ask(c *proc.Child, cmd command) (reply, error) {
	var r reply
	if err := c.Send(cmd); err != nil {
		return r, err
	}
	if err := c.Recv(&r); err != nil {
		return r, err
	}
	if r.Event != eventResult {
		return r, fmt.Errorf("whycache-compare: %s sent %q, want %q", c.Name, r.Event, eventResult)
	}
	return r, nil
}

// progressLine summarizes one round of one system.
func progressLine(rr roundResult) string {
	var parts []string
	for _, w := range workloadDefs {
		parts = append(parts, fmt.Sprintf("%s %s", w.ID, formatValue(rr.values[w.ID], w.Unit)))
	}
	return strings.Join(parts, "  ") + fmt.Sprintf("  (writer %s keys/s)", si(rr.writesPerSec))
}
