package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/whycache/whycache/bench/internal/peers"
	"github.com/whycache/whycache/bench/internal/stats"
	"github.com/whycache/whycache/bench/internal/workload"
)

// results is the whole report; it is written as results.json and
// rendered as results.md and results.png.
type results struct {
	Command   string          `json:"command"`
	Started   time.Time       `json:"started"`
	Seconds   float64         `json:"seconds"`
	Machine   machine         `json:"machine"`
	Settings  settings        `json:"settings"`
	Workloads []workloadDef   `json:"workloads"`
	Systems   []systemResult  `json:"systems"`
	Skipped   []skippedSystem `json:"skipped,omitempty"`
}

// settings are the workload parameters of the run.
type settings struct {
	Keys         int     `json:"keys"`
	KeyBytes     int     `json:"key_bytes"`
	ValueBytes   int     `json:"value_bytes"`
	HotKeys      int     `json:"hot_keys"`
	Rounds       int     `json:"rounds"`
	PhaseSeconds float64 `json:"phase_seconds"`
	WriteRate    int     `json:"write_rate"`
	WriteBatch   int     `json:"write_batch"`
	LoadBatch    int     `json:"load_batch"`
}

// systemResult is what was measured on one system.
type systemResult struct {
	peers.Info
	Version string `json:"version"`
	// Rounds holds one figure per round for every workload id.
	Rounds  map[string][]float64     `json:"rounds"`
	Summary map[string]stats.Summary `json:"summary"`
	// Ratio is the median divided by whycache's median, per workload.
	Ratio map[string]float64 `json:"ratio_to_whycache"`
	// WriterKeysPerSec is the writer's achieved rate during get-writes.
	WriterKeysPerSec stats.Summary `json:"writer_keys_per_sec"`
}

// newResults starts a report for a run on systems.
func newResults(cfg config, systems []peers.System, skipped []skippedSystem) *results {
	r := &results{
		Command: strings.TrimSpace("go run ./cmd/whycache-compare " + strings.Join(cfg.args, " ")),
		Started: time.Now(),
		Machine: thisMachine(),
		Settings: settings{
			Keys: cfg.keys, KeyBytes: workload.KeyLen, ValueBytes: workload.ValueLen, HotKeys: hotCount,
			Rounds: cfg.rounds, PhaseSeconds: cfg.duration.Seconds(),
			WriteRate: cfg.writeRate, WriteBatch: cfg.writeBatch, LoadBatch: cfg.loadBatch,
		},
		Workloads: workloadDefs,
		Skipped:   skipped,
	}
	for _, s := range systems {
		r.Systems = append(r.Systems, systemResult{Info: s.Info(), Version: s.Version()})
	}
	return r
}

// finish fills in the measurements, runs[i] being the rounds of system i,
// and the summaries and ratios.
func (r *results) finish(runs [][]roundResult) {
	r.Seconds = time.Since(r.Started).Seconds()
	r.Machine.LoadAfter = loadAverage()
	for i := range r.Systems {
		s := &r.Systems[i]
		s.Rounds = map[string][]float64{}
		var writer []float64
		for _, rr := range runs[i] {
			for _, w := range workloadDefs {
				s.Rounds[w.ID] = append(s.Rounds[w.ID], rr.values[w.ID])
			}
			writer = append(writer, rr.writesPerSec)
		}
		s.Summary = map[string]stats.Summary{}
		for id, v := range s.Rounds {
			s.Summary[id] = stats.Summarize(v)
		}
		s.WriterKeysPerSec = stats.Summarize(writer)
	}
	base := r.system("whycache")
	for i := range r.Systems {
		s := &r.Systems[i]
		s.Ratio = map[string]float64{}
		for id, sum := range s.Summary {
			if base == nil {
				break
			}
			if ratio := sum.Ratio(base.Summary[id]); !math.IsNaN(ratio) {
				s.Ratio[id] = ratio
			}
		}
	}
}

// system returns the result of the named system, or nil.
func (r *results) system(name string) *systemResult {
	for i := range r.Systems {
		if r.Systems[i].Name == name {
			return &r.Systems[i]
		}
	}
	return nil
}

// write writes results.json, results.md and results.png to dir.
func (r *results) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("whycache-compare: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("whycache-compare: %w", err)
	}
	png, err := r.chart()
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"results.json": append(js, '\n'),
		"results.md":   []byte(r.markdown()),
		"results.png":  png,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("whycache-compare: %w", err)
		}
	}
	return nil
}
