package main

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/whycache/whycache/bench/internal/peers"
)

func TestFormatting(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{si(0), "0.00"},
		{si(999), "999"},
		{si(1234), "1.23k"},
		{si(56789), "56.8k"},
		{si(8123456), "8.12M"},
		{si(2.5e9), "2.50G"},
		{si(math.NaN()), "n/a"},
		{formatValue(196.4, "B/key"), "196 B"},
		{formatValue(1.5e6, "ops/s"), "1.50M"},
		{formatRatio(1), "1.00×"},
		{formatRatio(0.0123), "0.012×"},
		{formatRatio(42.4), "42×"},
		{formatRatio(math.Inf(1)), "n/a"},
		{commas(1048576), "1,048,576"},
		{commas(100), "100"},
		{commas(1000), "1,000"},
		{powerLabel(0), "1"},
		{powerLabel(4), "10k"},
		{powerLabel(6), "1M"},
		{powerLabel(8), "100M"},
		{powerLabel(9), "1G"},
	}
	for i, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("case %d: got %q, want %q", i, tc.got, tc.want)
		}
	}
}

func TestLogTicks(t *testing.T) {
	ticks := siLogTicks{}.Ticks(1e4, 1e6)
	var labels []string
	for _, tk := range ticks {
		if tk.Value < 1e4 || tk.Value > 1e6 {
			t.Errorf("tick %v outside [1e4, 1e6]", tk.Value)
		}
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got := strings.Join(labels, " "); got != "10k 100k 1M" {
		t.Errorf("labels %q, want \"10k 100k 1M\"", got)
	}
	if len(ticks) != 19 { // 1..9 ×10k, 1..9 ×100k, 1M
		t.Errorf("%d ticks, want 19", len(ticks))
	}
	if len(siLogTicks{}.Ticks(0, 10)) != 0 {
		t.Error("ticks for a range starting at 0")
	}
}

// fakeResults builds a report of two systems and two rounds with known
// figures: the peer is per-process (so † and ‡ apply) and twice as fast.
func fakeResults() *results {
	cfg := config{keys: 1000, rounds: 2, writeRate: 10, writeBatch: 1, loadBatch: 10}
	why, _ := peers.Lookup("whycache")
	gomap, _ := peers.Lookup("go-map")
	r := newResults(cfg, []peers.System{why, gomap}, []skippedSystem{{Name: "redis", Reason: "redis-server not in PATH"}})
	mk := func(v float64) roundResult {
		rr := roundResult{values: map[string]float64{}, writesPerSec: 10}
		for _, w := range workloadDefs {
			rr.values[w.ID] = v
		}
		return rr
	}
	r.finish([][]roundResult{{mk(100), mk(300)}, {mk(400), mk(400)}})
	return r
}

func TestFinishRatios(t *testing.T) {
	r := fakeResults()
	why, peer := r.system("whycache"), r.system("go-map")
	if s := why.Summary[wGet]; s.Min != 100 || s.Median != 200 || s.Max != 300 || s.N != 2 {
		t.Errorf("whycache summary %+v", s)
	}
	for _, w := range workloadDefs {
		if got := peer.Ratio[w.ID]; got != 2 {
			t.Errorf("go-map %s ratio %v, want 2", w.ID, got)
		}
		if got := why.Ratio[w.ID]; got != 1 {
			t.Errorf("whycache %s ratio %v, want 1", w.ID, got)
		}
	}
}

func TestMarkdown(t *testing.T) {
	md := fakeResults().markdown()
	for _, want := range []string{
		"| whycache | shared mapping | 200 (100–300) |",
		"| go-map | 2.00× | 2.00× | 2.00×† | 2.00×‡ | 2.00× | 2.00× |",
		"Skipped redis: redis-server not in PATH",
		"## What each figure is",
		"1,000 keys of 16 random bytes",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, markPrivateCopies) != 3 { // two cells and the footnote
		t.Errorf("%q appears %d times, want 3", markPrivateCopies, strings.Count(md, markPrivateCopies))
	}
}

func TestChartNeedsData(t *testing.T) {
	r := fakeResults()
	if _, err := r.chart(); err != nil {
		t.Fatalf("chart of a valid report: %v", err)
	}
	for i := range r.Systems {
		r.Systems[i].Summary = nil
	}
	if _, err := r.chart(); err == nil {
		t.Error("chart of a report without figures: no error")
	}
}

func TestMissingError(t *testing.T) {
	missing := map[string]*peers.MissingError{
		"memcached": {System: "memcached", What: "memcached not in PATH", Packages: []string{"memcached"}},
		"redis":     {System: "redis", What: "redis-server not in PATH", Packages: []string{"redis-server"}},
		"lmdb":      {System: "lmdb", What: "built without cgo"},
	}
	err := missingError(missing)
	if !errors.Is(err, errMissing) {
		t.Errorf("%v does not wrap errMissing", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	for _, want := range []string{"apt-get install -y redis-server memcached`", "lmdb: built without cgo", "--skip-missing"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}
