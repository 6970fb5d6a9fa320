package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of one run; -json writes it as is.
type Report struct {
	Command string `json:"command"`
	Machine string `json:"machine"`
	Server  string `json:"server"` // MariaDB version and which server

	Followers int     `json:"followers"`
	Procs     int     `json:"follower_procs"` // their --procs
	Interval  string  `json:"interval"`
	Rate      int     `json:"rate"`
	Duration  float64 `json:"duration_s"` // the measured window
	Notify    bool    `json:"notify"`
	Replica   bool    `json:"replica"`

	Writes      int `json:"writes"` // Sets in the measured window
	WriteErrors int `json:"write_errors"`

	// Propagation over every (measured write, follower) pair.
	Propagation Propagation `json:"propagation"`
	// Applied is the same by the apply time the follower's state records
	// (Stats.LastApplied) rather than the moment the watcher saw it:
	// without the watcher's own delay. p50/p99/max over the pairs whose
	// apply time was known.
	Applied *Propagation `json:"propagation_applied,omitempty"`
	// OutsideStall is Propagation without the writes made from the stop
	// of replication until the replica had caught up after its restart
	// (-stall).
	OutsideStall *Propagation `json:"propagation_outside_stall,omitempty"`

	// Statements the followers sent to the server they poll (the global
	// status deltas less the benchmark's own sessions').
	Statements           map[string]int64 `json:"statements"`
	PerFollowerPerSecond float64          `json:"statements_per_follower_s"`
	SelectsPerFollowerS  float64          `json:"selects_per_follower_s"`
	// PerPoll divides by the polls the interval schedules (duration /
	// interval per follower); with the notifier followers also poll on
	// announcements, so it is an upper bound there.
	PerPoll                float64 `json:"statements_per_poll"`
	ConnectionsPerFollower float64 `json:"connections_per_follower"`

	ServerCPU       map[string]float64 `json:"server_cpu_pct"`           // % of one core, by server
	Window          Phase              `json:"window"`                   // the measured window in full
	WriterAlone     *Phase             `json:"writer_alone,omitempty"`   // before the followers start
	Idle            *Phase             `json:"followers_idle,omitempty"` // followers polling, no writes
	IdlePerPoll     float64            `json:"idle_statements_per_poll"`
	FollowerCPUSum  float64            `json:"follower_cpu_sum_pct"`
	FollowerCPUMean float64            `json:"follower_cpu_mean_pct"`
	FollowerCPUMax  float64            `json:"follower_cpu_max_pct"`
	BenchCPU        float64            `json:"bench_cpu_pct"` // writer and watcher
	RSSMeanMiB      float64            `json:"follower_rss_mean_mib"`
	RSSMaxMiB       float64            `json:"follower_rss_max_mib"`

	WatcherScans   int     `json:"watcher_scans"`
	WatcherMaxScan float64 `json:"watcher_max_scan_ms"`
	// WatcherGap is the time between the starts of the watcher's scans
	// (its resolution): p99 and max, in ms.
	WatcherGapP99 float64 `json:"watcher_gap_p99_ms"`
	WatcherGapMax float64 `json:"watcher_gap_max_ms"`
	// PollGap is the time between a follower's consecutive update id
	// changes in the window (see watcher.pollGaps): p50, p99, max in ms.
	PollGapP50 float64 `json:"update_gap_p50_ms"`
	PollGapP99 float64 `json:"update_gap_p99_ms"`
	PollGapMax float64 `json:"update_gap_max_ms"`

	ConvergedAfter float64      `json:"converged_after_s"`
	Behind         []int        `json:"behind,omitempty"` // followers that did not converge
	StatesVerified int          `json:"states_verified"`
	KeysChecked    int          `json:"keys_checked"`
	Failures       []string     `json:"failures,omitempty"`
	Stall          *StallReport `json:"stall,omitempty"`
}

// Propagation summarizes the times from Set returning to a follower's
// state holding the write.
type Propagation struct {
	P50ms         float64 `json:"p50_ms"`
	P99ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	Samples       int     `json:"samples"`
	Missing       int     `json:"missing"`        // pairs never seen
	Early         int     `json:"seen_early"`     // seen before Set returned (counted as 0)
	FollowersSeen int     `json:"followers_seen"` // followers seen holding at least one of the writes
}

// summarize returns the Propagation of p.
func summarize(p propagation) Propagation {
	s := Propagation{
		P50ms: ms(percentile(p.delays, 0.5)), P99ms: ms(percentile(p.delays, 0.99)), MaxMs: ms(percentile(p.delays, 1)),
		Samples: len(p.delays), Missing: p.missing, Early: p.early,
	}
	for _, k := range p.perFollower {
		if k > 0 {
			s.FollowersSeen++
		}
	}
	return s
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// machine describes this machine: cores, CPU model, OS.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s, %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// writeTable prints the report as a two-column table.
func (r *Report) writeTable(w io.Writer) {
	row := func(k, f string, a ...any) { fmt.Fprintf(w, "| %-40s | %s |\n", k, fmt.Sprintf(f, a...)) }
	mode := "poll only"
	if r.Notify {
		mode = "notifier (Redis pub/sub)"
	}
	if r.Replica {
		mode += ", followers read a replica"
	}
	fmt.Fprintf(w, "\n%s\n\n", r.Command)
	fmt.Fprintf(w, "| %-40s | %s |\n|---|---|\n", "what", "measured")
	row("followers × interval", "%d × %s, %s, --procs %d", r.Followers, r.Interval, mode, r.Procs)
	row("writes (measured window)", "%d in %.1f s (%d errors)", r.Writes, r.Duration, r.WriteErrors)
	p := r.Propagation
	row("propagation p50 / p99 / max", "%.1f / %.1f / %.1f ms", p.P50ms, p.P99ms, p.MaxMs)
	if a := r.Applied; a != nil {
		row("  by the states' apply time", "%.1f / %.1f / %.1f ms (%d samples)", a.P50ms, a.P99ms, a.MaxMs, a.Samples)
	}
	row("propagation samples", "%d (followers seen %d/%d, missing %d, early %d)", p.Samples, p.FollowersSeen, r.Followers, p.Missing, p.Early)
	if o := r.OutsideStall; o != nil {
		row("  outside the stall", "%.1f / %.1f / %.1f ms (%d samples)", o.P50ms, o.P99ms, o.MaxMs, o.Samples)
	}
	row("statements per follower per second", "%.2f (SELECT %.2f)", r.PerFollowerPerSecond, r.SelectsPerFollowerS)
	row("statements per scheduled poll", "%.2f", r.PerPoll)
	if r.Idle != nil {
		row("statements per poll, no writes", "%.2f", r.IdlePerPoll)
	}
	row("connections per follower", "%.2f", r.ConnectionsPerFollower)
	for _, name := range slices.Sorted(maps.Keys(r.ServerCPU)) {
		row("server CPU ("+name+")", "%.1f%% of a core", r.ServerCPU[name])
		if r.Idle != nil {
			row("  followers idle (no writes)", "%.1f%%", r.Idle.ServerCPU[name])
		}
		if r.WriterAlone != nil {
			row("  writer alone (no followers)", "%.1f%%", r.WriterAlone.ServerCPU[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Window.QueryCache)) {
		if q := r.Window.QueryCache[name]; q["Qcache_hits"]+q["Qcache_inserts"] > 0 {
			row("query cache ("+name+")", "%.0f%% hits (%d hits, %d inserts, %d not cached, %d pruned)", 100*float64(q["Qcache_hits"])/float64(q["Qcache_hits"]+q["Qcache_inserts"]+q["Qcache_not_cached"]), q["Qcache_hits"], q["Qcache_inserts"], q["Qcache_not_cached"], q["Qcache_lowmem_prunes"])
		}
	}
	row("follower CPU sum / mean / max", "%.1f%% / %.2f%% / %.2f%%", r.FollowerCPUSum, r.FollowerCPUMean, r.FollowerCPUMax)
	row("follower RSS mean / max", "%.1f / %.1f MiB", r.RSSMeanMiB, r.RSSMaxMiB)
	row("benchmark CPU (writer, watcher)", "%.1f%% (%d scans, longest %.2f ms)", r.BenchCPU, r.WatcherScans, r.WatcherMaxScan)
	row("watcher scan gap p99 / max", "%.1f / %.1f ms", r.WatcherGapP99, r.WatcherGapMax)
	row("follower update gap p50 / p99 / max", "%.1f / %.1f / %.1f ms", r.PollGapP50, r.PollGapP99, r.PollGapMax)
	row("all converged after the writes", "%.2f s (%d behind)", r.ConvergedAfter, len(r.Behind))
	row("machine load average (window)", "%s", r.Window.LoadAvg)
	row("states verified", "%d (%d keys each, %d failures)", r.StatesVerified, r.KeysChecked, len(r.Failures))
	if s := r.Stall; s != nil {
		row("replica stalled", "%.1f s: reported lag ≥ 2 intervals after %.2f s, at restart %.1f s (%d samples, largest shortfall %.2f s); caught up %.2f s after the restart", s.StalledSeconds, s.DetectedAfterSeconds, s.LagAtRestartSeconds, len(s.Samples), s.MaxShortfallSeconds, s.CatchUpSeconds)
	}
	if strings.HasSuffix(r.Server, "(shared)") {
		fmt.Fprintln(w, "\nThe server is shared: its statements and CPU include every other client's; -private measures on a server of its own.")
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAIL: %s\n", f)
	}
}

// writeJSON appends the report to path as one element of a JSON array
// (the file is created when missing), so that runs collect in one file.
func (r *Report) writeJSON(path string) error {
	var all []json.RawMessage
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &all); err != nil {
			return fmt.Errorf("-json %s: not a JSON array of reports: %w", path, err)
		}
	}
	one, err := json.Marshal(r)
	if err != nil {
		return err
	}
	all = append(all, one)
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
