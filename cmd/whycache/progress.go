package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progressEvery is the shortest time between two redraws.
const progressEvery = 100 * time.Millisecond

// progress draws one self-overwriting line on a terminal:
//
//	export [#########-----------]  45%  12.3 MB / 27.1 MB  3.2 MB/s  eta 5s
//
// A nil *progress draws nothing, so commands call it unconditionally. It is
// safe for use by several goroutines.
type progress struct {
	w     io.Writer
	label string
	bytes bool // amounts are bytes (else counts)
	start time.Time

	mu    sync.Mutex // guards the following
	total int64
	done  int64
	drawn time.Time // last redraw
	wide  int       // length of the longest line drawn
}

// newProgress returns a progress line for work of total units (0 when
// unknown), or nil when progress is off: --progress off, or auto and
// stderr is not a terminal.
func (e *env) newProgress(label string, total int64, bytes bool) *progress {
	switch e.g.progress {
	case progressOff:
		return nil
	case progressAuto, "":
		if !isTerminal(e.stderr) {
			return nil
		}
	}
	return &progress{w: e.stderr, label: label, bytes: bytes, total: total, start: time.Now()}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// set records the amount done (and the total, if it changed) and redraws
// at most every progressEvery.
func (p *progress) set(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if total > 0 {
		p.total = total
	}
	now := time.Now()
	if now.Sub(p.drawn) < progressEvery {
		return
	}
	p.drawn = now
	p.drawLocked(now)
}

// add adds n to the amount done.
func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	done := p.done + n
	p.mu.Unlock()
	p.set(done, 0)
}

// finish erases the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.drawn.IsZero() {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.wide))
	}
}

// drawLocked writes the line; mu is held.
func (p *progress) drawLocked(now time.Time) {
	line := renderProgress(p.label, p.done, p.total, p.bytes, now.Sub(p.start))
	pad := ""
	if len(line) < p.wide {
		pad = strings.Repeat(" ", p.wide-len(line))
	}
	p.wide = max(p.wide, len(line))
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
}

// renderProgress formats one progress line.
func renderProgress(label string, done, total int64, bytes bool, elapsed time.Duration) string {
	const barWidth = 20
	var b strings.Builder
	b.WriteString(label)
	amount := func(n int64) string {
		if bytes {
			return formatBytes(n)
		}
		return fmt.Sprint(n)
	}
	if total > 0 {
		frac := min(float64(done)/float64(total), 1)
		fill := int(frac * barWidth)
		fmt.Fprintf(&b, " [%s%s] %3.0f%%  %s / %s", strings.Repeat("#", fill), strings.Repeat("-", barWidth-fill), frac*100, amount(done), amount(total))
	} else {
		fmt.Fprintf(&b, "  %s", amount(done))
	}
	if secs := elapsed.Seconds(); secs > 0 && done > 0 {
		rate := float64(done) / secs
		fmt.Fprintf(&b, "  %s/s", amount(int64(rate)))
		if total > done && rate > 0 {
			eta := time.Duration(float64(total-done) / rate * float64(time.Second))
			fmt.Fprintf(&b, "  eta %s", eta.Round(time.Second))
		}
	}
	return b.String()
}

// formatBytes formats n bytes with a binary unit.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// counter counts bytes moved and reports them to a progress (nil for
// none).
type counter struct {
	p *progress
	n int64
}

func (c *counter) count(n int) {
	c.n += int64(n)
	c.p.add(int64(n))
}

// countingWriter counts the bytes written to w.
type countingWriter struct {
	w io.Writer
	counter
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.count(n)
	return n, err
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	counter
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.count(n)
	return n, err
}
