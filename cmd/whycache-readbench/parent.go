package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// runParent prepares the state, runs every scenario cfg.rounds times
// (interleaved: round 1 of each scenario, then round 2, ...), and prints
// the report to stdout. Progress goes to stderr.
func runParent(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("whycache-readbench: cannot re-execute myself: %w", err)
	}
	loadBefore := loadAverage()
	info, cleanup, err := prepareState(cfg.state, cfg.keys)
	defer cleanup()
	if err != nil {
		return err
	}
	if info.Reused {
		fmt.Fprintf(stderr, "reusing %s (%d keys)\n", info.Path, info.Keys)
	} else {
		fmt.Fprintf(stderr, "built %s (%d keys) in %.2fs\n", info.Path, info.Keys, info.BuildSeconds)
	}
	runs := make([][]runResult, len(scenarios))
	for round := range cfg.rounds {
		for i, sc := range scenarios {
			res, err := runScenario(ctx, exe, cfg, info.Path, sc, round)
			if ctx.Err() != nil {
				return fmt.Errorf("whycache-readbench: interrupted (round %d, %s)", round+1, sc.Name)
			}
			if err != nil {
				return fmt.Errorf("%w (round %d, %s)", err, round+1, sc.Name)
			}
			runs[i] = append(runs[i], res)
			fmt.Fprintf(stderr, "round %d/%d  %-20s %s\n", round+1, cfg.rounds, sc.Name, progressLine(res))
		}
	}
	rep := newReport(cfg, info, runs)
	rep.LoadBefore, rep.LoadAfter = loadBefore, loadAverage()
	if cfg.json {
		return rep.writeJSON(stdout)
	}
	return rep.writeTable(stdout)
}

// progressLine summarizes one run.
func progressLine(r runResult) string {
	s := fmt.Sprintf("%s reads/s", mega(r.ReadsPerSec))
	if len(r.ReaderPerSec) > 1 {
		parts := make([]string, len(r.ReaderPerSec))
		for i, v := range r.ReaderPerSec {
			parts[i] = mega(v)
		}
		s += " (" + strings.Join(parts, " + ") + ")"
	}
	if r.WritesPerSec > 0 {
		s += fmt.Sprintf(", writer %.0f keys/s", r.WritesPerSec)
	}
	return s
}

// mega formats a rate in millions.
func mega(v float64) string { return fmt.Sprintf("%.2fM", v/1e6) }

// loadAverage returns the first three fields of /proc/loadavg, or "" where
// it cannot be read.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// machine describes where the command ran.
type machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	Go         string `json:"go"`
}

func thisMachine() machine {
	return machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GOOS:       runtime.GOOS,
		GOARCH:     runtime.GOARCH,
		Go:         runtime.Version(),
	}
}
