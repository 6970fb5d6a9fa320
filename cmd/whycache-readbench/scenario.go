package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// scenario is a set of processes run together.
type scenario struct {
	Name    string `json:"name"`
	Readers int    `json:"readers"`
	Writer  bool   `json:"writer"`
}

// The scenarios, in the order each round runs them.
var scenarios = []scenario{
	{Name: "1 reader", Readers: 1},
	{Name: "2 readers", Readers: 2},
	{Name: "1 reader + writer", Readers: 1, Writer: true},
	{Name: "2 readers + writer", Readers: 2, Writer: true},
}

// Indexes into scenarios, for the ratios.
const (
	sc1R = iota
	sc2R
	sc1RW
	sc2RW
)

// runResult is one run of a scenario.
type runResult struct {
	ReadsPerSec     float64   `json:"reads_per_sec"`        // all readers together
	ReaderReads     []uint64  `json:"reader_reads"`         // reads of each reader
	ReaderPerSec    []float64 `json:"reader_reads_per_sec"` // reads/s of each reader
	ReaderCPU       []float64 `json:"reader_cpu"`           // CPU time (all threads) / wall time of each reader
	ReaderRun       []float64 `json:"reader_run"`           // reading thread's time on a CPU / wall time, each reader; -1 without data
	ReaderRunq      []float64 `json:"reader_runq"`          // reading thread's time runnable but waiting for a CPU / wall time, each reader; -1 without data
	ReaderAsleep    []float64 `json:"reader_asleep"`        // reading thread's time neither on a CPU nor waiting for one / wall time, each reader; -1 without data
	ReaderSleeps    []int64   `json:"reader_sleeps"`        // voluntary context switches of each reader
	ReaderPreempts  []int64   `json:"reader_preempts"`      // involuntary context switches of each reader
	ReadsPerCPUSec  float64   `json:"reads_per_cpu_sec"`    // all reads / all readers' CPU time
	WriterCPU       float64   `json:"writer_cpu,omitempty"` // CPU time / wall time of the writer
	WriterPreempts  int64     `json:"writer_preempts,omitempty"`
	WritesPerSec    float64   `json:"writes_per_sec,omitempty"` // keys/s the writer reached
	WriteOnPace     float64   `json:"write_on_pace,omitempty"`  // keys written / keys the schedule called for
	WriteBusy       float64   `json:"write_busy,omitempty"`     // fraction of the writer's time inside batches
	WriteMeanBatchU float64   `json:"write_mean_batch_us,omitempty"`
	WriteMaxBatchU  float64   `json:"write_max_batch_us,omitempty"`
}

// readyTimeout bounds how long children may take to open the state and
// generate the keys; the run itself is bounded by the duration plus this.
const readyTimeout = 2 * time.Minute

// runScenario starts the scenario's processes on the state at path, starts
// them together, and collects their reports. Every child it started has
// exited when it returns.
func runScenario(ctx context.Context, exe string, cfg config, path string, sc scenario, round int) (runResult, error) {
	var res runResult
	ctx, cancel := context.WithTimeout(ctx, cfg.duration+readyTimeout)
	defer cancel()
	common := []string{"--state", path, "--keys", strconv.Itoa(cfg.keys)}
	var readers []*child
	var wr *child
	all := []*child{}
	defer func() {
		for _, c := range all {
			c.kill()
		}
	}()
	for i := range sc.Readers {
		seed := uint64(round*16 + i + 1)
		c, err := startChild(ctx, exe, roleReader, slices.Concat(common, []string{
			"--duration", cfg.duration.String(), "--seed", strconv.FormatUint(seed, 10)}))
		if err != nil {
			return res, err
		}
		readers = append(readers, c)
		all = append(all, c)
	}
	if sc.Writer {
		seed := uint64(1000 + round)
		c, err := startChild(ctx, exe, roleWriter, slices.Concat(common, []string{
			"--write-rate", strconv.Itoa(cfg.writeRate), "--write-batch", strconv.Itoa(cfg.writeBatch),
			"--seed", strconv.FormatUint(seed, 10)}))
		if err != nil {
			return res, err
		}
		wr = c
		all = append(all, c)
	}
	for _, c := range all {
		if _, err := c.next(eventReady); err != nil {
			return res, err
		}
	}
	for _, c := range all {
		if err := c.tell(cmdGo); err != nil {
			return res, err
		}
	}
	var reads, cpu float64
	for _, c := range readers {
		m, err := c.next(eventResult)
		if err != nil {
			return res, err
		}
		if m.Seconds <= 0 {
			return res, fmt.Errorf("whycache-readbench: reader reported %v seconds", m.Seconds)
		}
		res.addReader(m)
		reads += float64(m.Reads)
		cpu += m.CPUSeconds
	}
	res.ReadsPerCPUSec = quotient(reads, cpu)
	if wr != nil {
		if err := wr.tell(cmdStop); err != nil {
			return res, err
		}
		m, err := wr.next(eventResult)
		if err != nil {
			return res, err
		}
		res.setWriter(m)
	}
	for _, c := range all {
		if err := c.finish(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// addReader adds a reader's result (m.Seconds > 0).
func (res *runResult) addReader(m message) {
	perSec := float64(m.Reads) / m.Seconds
	res.ReadsPerSec += perSec
	res.ReaderReads = append(res.ReaderReads, m.Reads)
	res.ReaderPerSec = append(res.ReaderPerSec, perSec)
	res.ReaderCPU = append(res.ReaderCPU, m.CPUSeconds/m.Seconds)
	run, runq, asleep := -1.0, -1.0, -1.0 // no data
	if m.BusyOK {
		run, runq = m.BusyRun/m.Seconds, m.BusyRunq/m.Seconds
		asleep = max(0, 1-run-runq)
	}
	res.ReaderRun = append(res.ReaderRun, run)
	res.ReaderRunq = append(res.ReaderRunq, runq)
	res.ReaderAsleep = append(res.ReaderAsleep, asleep)
	res.ReaderSleeps = append(res.ReaderSleeps, m.Sleeps)
	res.ReaderPreempts = append(res.ReaderPreempts, m.Preempts)
}

// setWriter records the writer's result.
func (res *runResult) setWriter(m message) {
	if m.Seconds > 0 {
		res.WritesPerSec = float64(m.WriteKeys) / m.Seconds
		res.WriteBusy = m.WriteBusySecs / m.Seconds
		res.WriterCPU = m.CPUSeconds / m.Seconds
	}
	if m.WriteDueKeys > 0 {
		res.WriteOnPace = float64(m.WriteKeys) / float64(m.WriteDueKeys)
	}
	if m.WriteBatches > 0 {
		res.WriteMeanBatchU = m.WriteBusySecs * 1e6 / float64(m.WriteBatches)
	}
	res.WriteMaxBatchU = m.WriteMaxBatchUs
	res.WriterPreempts = m.Preempts
}
