package main

import (
	"fmt"
	"strings"

	"github.com/whycache/whycache/bench/internal/peers"
)

// Marks in the tables.
const (
	markPrivateCopies = "†" // per-process system: each reader process holds its own copy
	markSameProcess   = "‡" // the writer was a goroutine of the reading process
)

// markdown renders the report as Markdown: the medians with their spread,
// the ratios to whycache, what each figure measures, and the systems.
func (r *results) markdown() string {
	var b strings.Builder
	st := r.Settings
	fmt.Fprintf(&b, "# whycache compared with its peers\n\n")
	fmt.Fprintf(&b, "`%s` (from `bench/`), %s, %.0f s.  \n", r.Command, r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Seconds)
	fmt.Fprintf(&b, "Machine: %s, %d cores, Linux %s, %s; load average %s before, %s after.  \n",
		orNA(r.Machine.CPU), r.Machine.Cores, orNA(r.Machine.Kernel), r.Machine.Go, orNA(r.Machine.LoadBefore), orNA(r.Machine.LoadAfter))
	fmt.Fprintf(&b, "Workload: %s keys of %d random bytes with %d-byte values; %d rounds per system (systems interleaved); read phases of %g s; writer at %s keys/s in batches of %d; bulk load in batches of %s.\n\n",
		commas(st.Keys), st.KeyBytes, st.ValueBytes, st.Rounds, st.PhaseSeconds, commas(st.WriteRate), st.WriteBatch, commas(st.LoadBatch))

	fmt.Fprintf(&b, "## Medians (min–max over %d rounds)\n\n", st.Rounds)
	b.WriteString("| system | sharing |")
	for _, w := range r.Workloads {
		fmt.Fprintf(&b, " %s (%s) |", w.Title, w.Unit)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", len(r.Workloads)) + "\n")
	for _, s := range r.Systems {
		fmt.Fprintf(&b, "| %s | %s |", s.Name, s.Sharing)
		for _, w := range r.Workloads {
			sum := s.Summary[w.ID]
			if !sum.Valid() {
				b.WriteString(" n/a |")
				continue
			}
			fmt.Fprintf(&b, " %s%s (%s–%s) |", formatValue(sum.Median, w.Unit), marks(s, w.ID),
				formatValue(sum.Min, w.Unit), formatValue(sum.Max, w.Unit))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n%s each process loaded and read its own copy (nothing is shared between processes).  \n", markPrivateCopies)
	fmt.Fprintf(&b, "%s the writer was a goroutine of the reading process (the system has no way for another process to write while it reads).\n\n", markSameProcess)

	b.WriteString("## Ratio to whycache\n\n")
	b.WriteString("Each median divided by whycache's median in the same run: above 1× the system is faster than whycache (for memory: it uses more).\n\n")
	b.WriteString("| system |")
	for _, w := range r.Workloads {
		fmt.Fprintf(&b, " %s |", w.Title)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(r.Workloads)) + "\n")
	for _, s := range r.Systems {
		fmt.Fprintf(&b, "| %s |", s.Name)
		for _, w := range r.Workloads {
			if v, ok := s.Ratio[w.ID]; ok {
				fmt.Fprintf(&b, " %s%s |", formatRatio(v), marks(s, w.ID))
			} else {
				b.WriteString(" n/a |")
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## What each figure is\n\n")
	for _, w := range r.Workloads {
		fmt.Fprintf(&b, "- **%s** (%s): %s.\n", w.Title, w.Unit, w.What)
	}

	b.WriteString("\n## The systems\n\n")
	b.WriteString("| system | version | sharing | writer in get-writes | writer achieved (keys/s) | durable writes | memory measured as | notes |\n")
	b.WriteString("|---|---|---|---|---:|---|---|---|\n")
	for _, s := range r.Systems {
		writer := "another process"
		if !s.WriterProcess {
			writer = "goroutine, same process"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Name, orNA(escape(s.Version)), s.Sharing, writer,
			si(s.WriterKeysPerSec.Median), yesNo(s.Durable), s.Memory, escape(s.Notes))
	}
	for _, sk := range r.Skipped {
		fmt.Fprintf(&b, "\nSkipped %s: %s\n", sk.Name, escape(sk.Reason))
	}
	return b.String()
}

// marks returns the footnote marks of a cell.
func marks(s systemResult, id string) string {
	switch {
	case id == wGet2 && s.Sharing == peers.PerProcess:
		return markPrivateCopies
	case id == wWrites && !s.WriterProcess:
		return markSameProcess
	}
	return ""
}

// commas formats n with thousands separators.
func commas(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no (memory only)"
}

// escape keeps text from breaking a table row.
func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
