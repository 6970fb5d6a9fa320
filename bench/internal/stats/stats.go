// Package stats summarizes repeated measurements: minimum, median and
// maximum, and ratios between medians.
package stats

import (
	"math"
	"slices"
)

// Summary is the spread of repeated measurements of one quantity.
type Summary struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	N      int     `json:"n"` // number of measurements
}

// Summarize returns the summary of values. NaNs and infinities (failed
// measurements) are skipped; with no values left it returns the zero
// Summary, which is not Valid.
func Summarize(values []float64) Summary {
	v := make([]float64, 0, len(values))
	for _, x := range values {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Summary{}
	}
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Summary{Min: v[0], Median: med, Max: v[n-1], N: n}
}

// Valid reports whether s summarizes at least one measurement.
func (s Summary) Valid() bool { return s.N > 0 }

// Ratio returns s.Median / base.Median, or NaN when either is missing or
// base's median is zero.
func (s Summary) Ratio(base Summary) float64 {
	if !s.Valid() || !base.Valid() || base.Median == 0 {
		return math.NaN()
	}
	return s.Median / base.Median
}
