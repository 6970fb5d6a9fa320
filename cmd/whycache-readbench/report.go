package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// The targets of SPEC.md section 5.
const (
	scalingMust = 1.8
	scalingAim  = 1.95
	writesMust  = 0.8
	writesAim   = 0.95
	// writerOnPace is the fraction of the keys its schedule called for
	// below which the report notes that the writer fell behind.
	writerOnPace = 0.95
	// busyMachineRunq is the share of time a reader without a writer may
	// wait for a CPU before the report calls the machine busy.
	busyMachineRunq = 0.05
	// asleepNote is the share of time a reader under writes may spend
	// blocked before the report points it out.
	asleepNote = 0.05
)

// summary is the spread of one figure over the rounds.
type summary struct {
	Min    float64   `json:"min"`
	Median float64   `json:"median"`
	Max    float64   `json:"max"`
	Rounds []float64 `json:"rounds"`
}

func summarize(v []float64) summary {
	s := summary{Rounds: v}
	if len(v) == 0 {
		return s
	}
	sorted := slices.Sorted(slices.Values(v))
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	if n := len(sorted); n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return s
}

// scenarioReport is the results of one scenario.
type scenarioReport struct {
	scenario
	ReadsPerSec    summary     `json:"reads_per_sec"`
	ReadsPerCPUSec summary     `json:"reads_per_cpu_sec"`
	WritesPerSec   *summary    `json:"writes_per_sec,omitempty"`
	Runs           []runResult `json:"runs"`
}

// metric picks one figure of a run.
type metric func(runResult) float64

func readsPerSec(r runResult) float64    { return r.ReadsPerSec }
func readsPerCPUSec(r runResult) float64 { return r.ReadsPerCPUSec }
func writesPerSec(r runResult) float64   { return r.WritesPerSec }

// summarizeRuns summarizes metric f over runs.
func summarizeRuns(runs []runResult, f metric) summary {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return summarize(v)
}

// ratio compares two scenarios: the median of a figure in one over its
// median in the other. A ratio without a target (Must 0) is diagnostic.
type ratio struct {
	Name     string    `json:"name"`
	Value    float64   `json:"value"`      // median over median
	PerRound []float64 `json:"per_round"`  // the same ratio within each round
	Must     float64   `json:"must_reach"` // SPEC.md minimum; 0 for a diagnostic
	Aim      float64   `json:"aim"`
	Pass     bool      `json:"pass"`
	AimMet   bool      `json:"aim_met"`
	Judged   bool      `json:"judged"`
	Note     string    `json:"note,omitempty"`
}

// newRatio compares metric f of scenarios num and den, rounds paired.
func newRatio(name string, num, den scenarioReport, f metric, must, aim float64, judged bool) ratio {
	r := ratio{Name: name, Must: must, Aim: aim, Judged: judged && must > 0}
	r.Value = quotient(summarizeRuns(num.Runs, f).Median, summarizeRuns(den.Runs, f).Median)
	for k := range min(len(num.Runs), len(den.Runs)) {
		r.PerRound = append(r.PerRound, quotient(f(num.Runs[k]), f(den.Runs[k])))
	}
	r.Pass, r.AimMet = must > 0 && r.Value >= must, must > 0 && r.Value >= aim
	return r
}

// verdict is the ratio's result column.
func (r ratio) verdict() string {
	if r.Must == 0 {
		return "diagnostic"
	}
	v := "MISS"
	switch {
	case r.AimMet:
		v = "PASS, aim met"
	case r.Pass:
		v = "PASS"
	}
	if !r.Judged {
		v += " (not judged)"
	}
	return v
}

// report is everything the command prints.
type report struct {
	State      stateInfo        `json:"state"`
	Machine    machine          `json:"machine"`
	LoadBefore string           `json:"load_average_before"`
	LoadAfter  string           `json:"load_average_after"`
	Duration   string           `json:"duration"`
	Rounds     int              `json:"rounds"`
	WriteRate  int              `json:"write_rate"`
	WriteBatch int              `json:"write_batch"`
	Scenarios  []scenarioReport `json:"scenarios"`
	Ratios     []ratio          `json:"ratios"`
	Notes      []string         `json:"notes"`
}

// newReport summarizes runs (indexed like scenarios, one entry per round).
func newReport(cfg config, info stateInfo, runs [][]runResult) *report {
	m := thisMachine()
	rep := &report{
		State:      info,
		Machine:    m,
		Duration:   cfg.duration.String(),
		Rounds:     cfg.rounds,
		WriteRate:  cfg.writeRate,
		WriteBatch: cfg.writeBatch,
	}
	for i, sc := range scenarios {
		sr := scenarioReport{
			scenario:       sc,
			Runs:           runs[i],
			ReadsPerSec:    summarizeRuns(runs[i], readsPerSec),
			ReadsPerCPUSec: summarizeRuns(runs[i], readsPerCPUSec),
		}
		if sc.Writer {
			w := summarizeRuns(runs[i], writesPerSec)
			sr.WritesPerSec = &w
			onPace := 1.0
			for _, r := range runs[i] {
				onPace = min(onPace, r.WriteOnPace)
			}
			if onPace < writerOnPace {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: the writer fell behind its schedule: %.0f%% of the keys due at worst, %.0f keys/s at worst (median %.0f) of the %d requested",
					sc.Name, 100*onPace, w.Min, w.Median, cfg.writeRate))
			}
		}
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	s := rep.Scenarios
	oversubscribed := m.CPUs < 3
	rep.Ratios = []ratio{
		newRatio("2 readers / 1 reader", s[sc2R], s[sc1R], readsPerSec, scalingMust, scalingAim, true),
		newRatio("1 reader under writes / idle", s[sc1RW], s[sc1R], readsPerSec, writesMust, writesAim, true),
		newRatio("2 readers under writes / idle", s[sc2RW], s[sc2R], readsPerSec, writesMust, writesAim, !oversubscribed),
		newRatio("per CPU-second: 2 readers / 1 reader", s[sc2R], s[sc1R], readsPerCPUSec, 0, 0, false),
		newRatio("per CPU-second: 1 reader under writes / idle", s[sc1RW], s[sc1R], readsPerCPUSec, 0, 0, false),
	}
	if oversubscribed {
		rep.Ratios[2].Note = fmt.Sprintf("3 busy processes on %d CPUs", m.CPUs)
	}
	for _, i := range []int{sc1R, sc2R} {
		med := medianRun(s[i])
		if q := slices.Max(append([]float64{0}, med.ReaderRunq...)); q > busyMachineRunq {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the machine was busy: in the median %s run a reader waited for a CPU %.0f%% of its time (other processes); the ratios then measure CPU availability more than the reads",
				s[i].Name, 100*q))
		}
	}
	for _, i := range []int{sc1RW, sc2RW} {
		med := medianRun(s[i])
		for k, a := range med.ReaderAsleep {
			if a > asleepNote {
				secs := float64(med.ReaderReads[k]) / med.ReaderPerSec[k]
				rep.Notes = append(rep.Notes, fmt.Sprintf("in the median %s run, reader %d was blocked %.0f%% of its time (%.0f sleeps/s): readers that meet a writer's transaction wait for it in shm's ReadBegin",
					s[i].Name, k+1, 100*a, float64(med.ReaderSleeps[k])/secs))
			}
		}
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("nothing is pinned to CPUs; the machine has %d", m.CPUs),
		"reads per CPU-second divide the reads by the readers' own CPU time: their ratios (diagnostic) show slowdown of the reads themselves, apart from readers waiting for a CPU",
		"median run: run, runq and asleep split a reader's wall time into its reading thread's time on a CPU, runnable but waiting for a CPU, and blocked (a reader meeting a writer spins, yields, then sleeps); sleeps/s and preempts/s are voluntary and involuntary context switches of all its threads")
	if oversubscribed {
		rep.Notes = append(rep.Notes, fmt.Sprintf(`2 readers + 1 writer oversubscribe %d cores, so the "under writes" target is judged with 1 reader + 1 writer`, m.CPUs))
	}
	return rep
}

func quotient(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// writeJSON prints the report as indented JSON.
func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("whycache-readbench: %w", err)
	}
	return nil
}

// writeTable prints the report as text tables.
func (rep *report) writeTable(w io.Writer) error {
	var b strings.Builder
	st := rep.State
	how := fmt.Sprintf("built in %.2fs", st.BuildSeconds)
	if st.Reused {
		how = "reused"
	}
	fmt.Fprintf(&b, "state: %s, %d keys of %d B with %d B values, file %.1f MiB, %s\n",
		st.Path, st.Keys, keyLen, valueLen, float64(st.FileBytes)/(1<<20), how)
	fmt.Fprintf(&b, "runs: %s of reads per run, %d rounds, writer %d keys/s in batches of %d\n",
		rep.Duration, rep.Rounds, rep.WriteRate, rep.WriteBatch)
	fmt.Fprintf(&b, "machine: %d CPUs, %s %s/%s, load average before %s, after %s\n\n",
		rep.Machine.CPUs, rep.Machine.Go, rep.Machine.GOOS, rep.Machine.GOARCH, rep.LoadBefore, rep.LoadAfter)

	nameWidth := 0
	for _, sc := range rep.Scenarios {
		nameWidth = max(nameWidth, len(sc.Name))
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\treads/s min\tmedian\tmax\treads/CPU-s median\twrites/s median\t\n", nameWidth, "scenario")
	for _, sc := range rep.Scenarios {
		writes := "-"
		if sc.WritesPerSec != nil {
			writes = fmt.Sprintf("%.0f", sc.WritesPerSec.Median)
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%s\t%s\t\n", nameWidth, sc.Name,
			mega(sc.ReadsPerSec.Min), mega(sc.ReadsPerSec.Median), mega(sc.ReadsPerSec.Max),
			mega(sc.ReadsPerCPUSec.Median), writes)
	}
	tw.Flush()
	b.WriteString("\n")

	// The processes of each scenario's median run: readers' reads/s, shares
	// of the wall time on a CPU, waiting for one and asleep, context
	// switches per second; the writer's share of a CPU, time inside
	// batches and batch durations.
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\treader reads/s\trun\trunq\tasleep\tsleeps/s\tpreempts/s\twriter CPU\tin batches\tbatch mean/max µs\t\n", nameWidth, "median run")
	for _, sc := range rep.Scenarios {
		med := medianRun(sc)
		var reads, cpu, runq, asleep, sleeps, preempts []string
		for i, v := range med.ReaderPerSec {
			secs := float64(med.ReaderReads[i]) / v
			reads = append(reads, mega(v))
			cpu = append(cpu, percent(med.ReaderRun[i]))
			runq = append(runq, percent(med.ReaderRunq[i]))
			asleep = append(asleep, percent(med.ReaderAsleep[i]))
			sleeps = append(sleeps, fmt.Sprintf("%.0f", float64(med.ReaderSleeps[i])/secs))
			preempts = append(preempts, fmt.Sprintf("%.0f", float64(med.ReaderPreempts[i])/secs))
		}
		wcpu, busy, batch := "-", "-", "-"
		if sc.Writer {
			wcpu = fmt.Sprintf("%.0f%%", 100*med.WriterCPU)
			busy = fmt.Sprintf("%.1f%%", 100*med.WriteBusy)
			batch = fmt.Sprintf("%.0f/%.0f", med.WriteMeanBatchU, med.WriteMaxBatchU)
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", nameWidth, sc.Name,
			strings.Join(reads, " "), strings.Join(cpu, " "), strings.Join(runq, " "), strings.Join(asleep, " "),
			strings.Join(sleeps, " "), strings.Join(preempts, " "),
			wcpu, busy, batch)
	}
	tw.Flush()
	b.WriteString("\n")

	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio (medians)\tvalue\tper round\tmust\taim\tresult")
	for _, r := range rep.Ratios {
		rounds := make([]string, len(r.PerRound))
		for i, v := range r.PerRound {
			rounds[i] = fmt.Sprintf("%.3f", v)
		}
		res := r.verdict()
		if r.Note != "" {
			res += ": " + r.Note
		}
		must, aim := "-", "-"
		if r.Must > 0 {
			must, aim = fmt.Sprintf("≥ %.2f", r.Must), fmt.Sprintf("≥ %.2f", r.Aim)
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%s\t%s\t%s\t%s\n", r.Name, r.Value, strings.Join(rounds, " "), must, aim, res)
	}
	tw.Flush()
	b.WriteString("\n")
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("whycache-readbench: %w", err)
	}
	return nil
}

// percent formats a fraction as a percentage, or "?" when negative (no
// data).
func percent(f float64) string {
	if f < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

// medianRun returns the run whose aggregate reads/s is the median (the
// lower middle one for an even count).
func medianRun(sc scenarioReport) runResult {
	if len(sc.Runs) == 0 {
		return runResult{}
	}
	runs := slices.Clone(sc.Runs)
	slices.SortFunc(runs, func(a, b runResult) int {
		switch {
		case a.ReadsPerSec < b.ReadsPerSec:
			return -1
		case a.ReadsPerSec > b.ReadsPerSec:
			return 1
		}
		return 0
	})
	return runs[(len(runs)-1)/2]
}
