package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Size of the chart.
const (
	chartWidth  = 32 * vg.Centimeter
	chartHeight = 13 * vg.Centimeter
	memoryShare = 0.27 // of the width, for the memory panel
)

// palette colors the systems; whycache (first) gets the strongest color.
var palette = []color.RGBA{
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // red
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // green
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // purple
	{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}, // brown
	{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}, // grey
	{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff}, // cyan
}

func systemColor(i int) color.Color { return palette[i%len(palette)] }

// chart renders the medians as a PNG: grouped bars of operations per
// second per workload and system on a log scale, and beside them the
// memory per key.
func (r *results) chart() ([]byte, error) {
	rates, err := r.ratePlot()
	if err != nil {
		return nil, err
	}
	mem, err := r.memoryPlot()
	if err != nil {
		return nil, err
	}
	img := vgimg.New(chartWidth, chartHeight)
	dc := draw.New(img)
	rates.Draw(draw.Crop(dc, 0, -chartWidth*memoryShare, 0, 0))
	mem.Draw(draw.Crop(dc, chartWidth*(1-memoryShare), 0, 0, 0))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("whycache-compare: chart: %w", err)
	}
	return buf.Bytes(), nil
}

// ratePlot is the grouped bar chart of the rate workloads.
func (r *results) ratePlot() (*plot.Plot, error) {
	var ids, labels []string
	for _, w := range r.Workloads {
		if w.Rate {
			ids = append(ids, w.ID)
			labels = append(labels, w.Title)
		}
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Median over %d rounds, %s keys (log scale; higher is better)", r.Settings.Rounds, commas(r.Settings.Keys))
	p.Y.Label.Text = "operations (keys) per second"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = siLogTicks{}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.5, float64(len(ids))-0.5
	lo, hi := math.Inf(1), 0.0
	n := len(r.Systems)
	const groupWidth = 0.84 // of the space of one workload
	for j, s := range r.Systems {
		b := &bars{width: groupWidth / float64(n), offset: groupWidth*(float64(j)+0.5)/float64(n) - groupWidth/2, color: systemColor(j)}
		for _, id := range ids {
			v := s.Summary[id].Median
			b.values = append(b.values, v)
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		p.Add(b)
		p.Legend.Add(s.Name, b)
	}
	if hi == 0 {
		return nil, fmt.Errorf("whycache-compare: chart: no rate to plot")
	}
	p.Y.Min = math.Pow10(int(math.Floor(math.Log10(lo))))
	p.Y.Max = math.Pow10(int(math.Ceil(math.Log10(hi))) + 1) // a decade of room for the legend
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Millimeter * 2
	p.Legend.Padding = vg.Millimeter * 0.6
	p.Add(&gridLines{})
	return p, nil
}

// memoryPlot is the horizontal bar chart of memory per key.
func (r *results) memoryPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Memory per key (lower is better)"
	p.X.Label.Text = "bytes per key"
	var names []string
	hi := 0.0
	n := len(r.Systems)
	for j, s := range r.Systems {
		v := s.Summary[wMemory].Median
		// One bars plotter per system, so each gets its color; categories
		// run from the top (index n-1) down.
		vals := make([]float64, n)
		for k := range vals {
			vals[k] = math.NaN()
		}
		vals[n-1-j] = v
		p.Add(&bars{values: vals, width: 0.7, color: systemColor(j), horizontal: true, labels: true, unit: "B/key"})
		names = append([]string{s.Name}, names...)
		hi = max(hi, v)
	}
	p.Y.Tick.Marker = plot.ConstantTicks(nominalTicks(names))
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5
	p.X.Min, p.X.Max = 0, max(hi, 1)*1.3 // room for the labels
	p.X.Tick.Marker = plainTicks{}
	return p, nil
}

func nominalTicks(names []string) []plot.Tick {
	ticks := make([]plot.Tick, len(names))
	for i, name := range names {
		ticks[i] = plot.Tick{Value: float64(i), Label: name}
	}
	return ticks
}

// bars draws one bar per category (categories at 0, 1, 2, ...) from the
// axis minimum to its value, offset within the category; NaN or
// non-positive values draw nothing. With labels it writes each value at
// the bar's end.
type bars struct {
	values     []float64
	width      float64 // in category units
	offset     float64 // of the bar's center from the category's, in category units
	color      color.Color
	horizontal bool
	labels     bool
	unit       string
}

// Plot implements plot.Plotter.
func (b *bars) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	trCat, trVal := trX, trY
	if b.horizontal {
		trCat, trVal = trY, trX
	}
	for i, v := range b.values {
		if !(v > 0) {
			continue
		}
		c0 := trCat(float64(i) + b.offset - b.width/2)
		c1 := trCat(float64(i) + b.offset + b.width/2)
		v1 := trVal(v)
		var pts []vg.Point
		if b.horizontal {
			pts = []vg.Point{{X: c.Min.X, Y: c0}, {X: v1, Y: c0}, {X: v1, Y: c1}, {X: c.Min.X, Y: c1}}
			pts = c.ClipPolygonX(pts)
		} else {
			pts = []vg.Point{{X: c0, Y: c.Min.Y}, {X: c0, Y: v1}, {X: c1, Y: v1}, {X: c1, Y: c.Min.Y}}
			pts = c.ClipPolygonY(pts)
		}
		c.FillPolygon(b.color, pts)
		if b.labels && b.horizontal {
			sty := plt.X.Tick.Label
			sty.XAlign, sty.YAlign = draw.XLeft, draw.YCenter
			c.FillText(sty, vg.Point{X: v1 + vg.Millimeter, Y: (c0 + c1) / 2}, formatValue(v, b.unit))
		}
	}
}

// Thumbnail implements plot.Thumbnailer for the legend.
func (b *bars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y},
	})
}

// gridLines draws light horizontal lines at the major ticks of the Y axis.
type gridLines struct{}

// Plot implements plot.Plotter.
func (gridLines) Plot(c draw.Canvas, plt *plot.Plot) {
	_, trY := plt.Transforms(&c)
	sty := draw.LineStyle{Color: color.Gray{Y: 0xdd}, Width: vg.Points(0.5)}
	for _, t := range plt.Y.Tick.Marker.Ticks(plt.Y.Min, plt.Y.Max) {
		if t.Label == "" {
			continue
		}
		y := trY(t.Value)
		c.StrokeLines(sty, c.ClipLinesX([]vg.Point{{X: c.Min.X, Y: y}, {X: c.Max.X, Y: y}})...)
	}
}

// plainTicks are gonum's default ticks labelled without trailing zeros.
type plainTicks struct{}

// Ticks implements plot.Ticker.
func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

// siLogTicks marks every power of ten with an SI label (1k, 10M, ...) and
// the multiples between them without labels.
type siLogTicks struct{}

// Ticks implements plot.Ticker.
func (siLogTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	if !(lo > 0) || !(hi > lo) {
		return ticks
	}
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p := math.Pow10(int(e))
		for m := 1; m < 10; m++ {
			v := p * float64(m)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 {
				t.Label = powerLabel(int(e))
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// powerLabel labels 10^e with an SI suffix: 1, 10, 100, 1k, ... 100G.
func powerLabel(e int) string {
	if e < 0 || e > 11 {
		return fmt.Sprintf("1e%d", e)
	}
	return "1" + strings.Repeat("0", e%3) + []string{"", "k", "M", "G"}[e/3]
}
