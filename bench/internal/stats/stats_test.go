package stats

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		in     []float64
		want   Summary
		wantOK bool
	}{
		{"odd count, unsorted", []float64{5, 1, 3}, Summary{1, 3, 5, 3}, true},
		{"even count averages the middle two", []float64{4, 1, 2, 10}, Summary{1, 3, 10, 4}, true},
		{"one value", []float64{7}, Summary{7, 7, 7, 1}, true},
		{"NaNs and infinities are skipped", []float64{nan, 2, math.Inf(1), 8, math.Inf(-1)}, Summary{2, 5, 8, 2}, true},
		{"only NaNs", []float64{nan}, Summary{}, false},
		{"empty", nil, Summary{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarize(tc.in)
			if got.Valid() != tc.wantOK {
				t.Fatalf("Valid() = %v, want %v (%+v)", got.Valid(), tc.wantOK, got)
			}
			if got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSummarizeDoesNotReorderInput(t *testing.T) {
	in := []float64{3, 1, 2}
	Summarize(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("input changed to %v", in)
	}
}

func TestRatio(t *testing.T) {
	a := Summarize([]float64{10, 20, 30})
	b := Summarize([]float64{40})
	if r := b.Ratio(a); r != 2 {
		t.Errorf("Ratio = %v, want 2", r)
	}
	for name, r := range map[string]float64{
		"missing base":  a.Ratio(Summary{}),
		"missing value": Summary{}.Ratio(a),
		"zero base":     a.Ratio(Summarize([]float64{0})),
	} {
		if !math.IsNaN(r) {
			t.Errorf("%s: Ratio = %v, want NaN", name, r)
		}
	}
}
