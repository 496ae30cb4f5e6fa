package report

import (
	"fmt"
	"image/color"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Figure is a plot written as Name.png and Name.svg in a run directory.
type Figure struct {
	Name    string
	Title   string
	Caption string
}

// Plot size: wide enough for a dozen functions' labels. PlotStages grows
// taller with its rows.
const (
	plotW = 8 * vg.Inch
	plotH = 4.5 * vg.Inch
)

// legendGap separates the legend from the data and from the right edge.
const legendGap = 0.15 * vg.Inch

// save writes p as name.png and name.svg, w by h. The legend, if p has
// one, goes in a column right of the data, top-aligned with it, so that it
// never covers a bar or a line whatever the data.
func save(p *plot.Plot, dir, name string, w, h vg.Length) error {
	leg := p.Legend
	p.Legend = plot.NewLegend() // empty: p.Draw draws no legend over the data
	defer func() { p.Legend = leg }()
	leg.Top, leg.Left = true, true
	var title vg.Length
	if p.Title.Text != "" {
		title = p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
	}
	for _, ext := range []string{".png", ".svg"} {
		c, err := draw.NewFormattedCanvas(w, h, ext[1:])
		if err != nil {
			return fmt.Errorf("report: plot %s%s: %w", name, ext, err)
		}
		dc := draw.New(c)
		lw := leg.Rectangle(dc).Size().X // zero without entries
		if lw > 0 {
			lw += 2 * legendGap
		}
		p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
		leg.Draw(draw.Crop(dc, w-lw+legendGap, -legendGap, 0, -title))
		if err := writeTo(filepath.Join(dir, name+ext), c); err != nil {
			return fmt.Errorf("report: plot %s%s: %w", name, ext, err)
		}
	}
	return nil
}

// writeTo writes c's image to path.
func writeTo(path string, c io.WriterTo) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// groups lays rows out as functions (x categories, in first-seen order)
// by modes (bars within a category, in first-seen order).
func groups(rows []Row) (fns, modes []string, at map[[2]string]Row) {
	at = map[[2]string]Row{}
	for _, r := range rows {
		if !slices.Contains(fns, r.Function) {
			fns = append(fns, r.Function)
		}
		if !slices.Contains(modes, r.Mode) {
			modes = append(modes, r.Mode)
		}
		at[[2]string{r.Function, r.Mode}] = r
	}
	return fns, modes, at
}

// bars draws one series of a grouped bar chart in data coordinates, with
// optional whiskers from the bar's top to a second value. It exists
// because gonum's BarChart draws from zero, which a log scale cannot show.
type bars struct {
	xs, ys, tops []float64 // tops: whisker ends, or nil
	width        float64   // in x data units
	color        color.Color
	log          bool
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	whisker := draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
	for i, x := range b.xs {
		y := b.ys[i]
		if y <= 0 && b.log {
			continue
		}
		x0, x1 := trX(x-b.width/2), trX(x+b.width/2)
		y0 := c.Min.Y
		if !b.log {
			y0 = trY(0)
		}
		y1 := trY(y)
		pts := c.ClipPolygonY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
		c.FillPolygon(b.color, pts)
		if b.tops != nil && b.tops[i] > y {
			xm, yt := (x0+x1)/2, trY(b.tops[i])
			c.StrokeLine2(whisker, xm, y1, xm, yt)
			c.StrokeLine2(whisker, xm-(x1-x0)/4, yt, xm+(x1-x0)/4, yt)
		}
	}
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for i, x := range b.xs {
		xmin, xmax = min(xmin, x-b.width/2), max(xmax, x+b.width/2)
		for _, y := range []float64{b.ys[i], top(b.tops, i)} {
			if y > 0 || (!b.log && !math.IsNaN(y)) {
				ymin, ymax = min(ymin, y), max(ymax, y)
			}
		}
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax = 0, 1
	}
	if math.IsInf(ymin, 1) {
		// Nothing to draw; a range a log scale accepts.
		ymin, ymax = 1, 10
	}
	if !b.log {
		ymin = min(ymin, 0)
	}
	return xmin, xmax, ymin, ymax
}

func top(tops []float64, i int) float64 {
	if tops == nil {
		return math.NaN()
	}
	return tops[i]
}

func (b *bars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y}})
}

// groupedBars adds one bars series per mode to p, value(row) being the bar
// and whisker(row) (optional) the whisker's end.
func groupedBars(p *plot.Plot, rows []Row, log bool, value, whisker func(Row) float64) {
	fns, modes, at := groups(rows)
	w := 0.8 / float64(len(modes))
	for j, mode := range modes {
		b := &bars{width: w * 0.9, color: plotutil.Color(j), log: log}
		if whisker != nil {
			b.tops = []float64{}
		}
		for i, fn := range fns {
			r, ok := at[[2]string{fn, mode}]
			if !ok {
				continue
			}
			b.xs = append(b.xs, float64(i)+(float64(j)-float64(len(modes)-1)/2)*w)
			b.ys = append(b.ys, value(r))
			if whisker != nil {
				b.tops = append(b.tops, whisker(r))
			}
		}
		p.Add(b)
		p.Legend.Add(mode, b)
	}
	p.NominalX(fns...)
	p.X.Min, p.X.Max = -0.5, float64(len(fns))-0.5
	if len(fns) > 6 {
		// Slanted labels keep a dozen or more function names legible.
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	if log {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		lo := math.Inf(1)
		for _, r := range rows {
			if v := value(r); v > 0 {
				lo = min(lo, v)
			}
		}
		if !math.IsInf(lo, 1) {
			// Start a decade below the smallest bar so it stays visible.
			p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo))-0.3)
		}
		p.Y.Max *= 1.5 // the tallest whisker clear of the title
	} else {
		margin(p)
	}
}

// margin keeps a linear plot's tallest bar or line clear of the title.
func margin(p *plot.Plot) {
	if p.Y.Max > p.Y.Min {
		p.Y.Max += 0.05 * (p.Y.Max - p.Y.Min)
	}
}

// PlotLatency writes bars of p50 latency per function and mode on a log
// scale, with whiskers up to p99.
func PlotLatency(dir, name string, rows []Row) (Figure, error) {
	f := Figure{Name: name, Title: "Latency per function and mode", Caption: "Bars: p50; whiskers: p99 (log scale)."}
	p := newPlot(f.Title, "function", "latency (ms, log scale)")
	groupedBars(p, rows, true, func(r Row) float64 { return r.P50Ms }, func(r Row) float64 { return r.P99Ms })
	return f, save(p, dir, name, plotW, plotH)
}

// PlotBars writes one bar per function and mode of value(row) on a linear
// scale (faults, working-set sizes, cold-start rates).
func PlotBars(dir, name, title, ylabel string, rows []Row, value func(Row) float64) (Figure, error) {
	f := Figure{Name: name, Title: title}
	p := newPlot(title, "function", ylabel)
	groupedBars(p, rows, false, value, nil)
	return f, save(p, dir, name, plotW, plotH)
}

// PlotStages writes stacked bars of each row's stage durations, one bar
// per function and mode, stages in stages order (nil: every stage present,
// in the order they happen). The bars are horizontal, first row on top,
// each labelled "function / mode" on one line: a suite has a hundred of
// them, which no x axis can label legibly, so the plot grows taller with
// its rows instead.
func PlotStages(dir, name string, rows []Row, stages []string) (Figure, error) {
	f := Figure{Name: name, Title: "Where the time goes", Caption: "Typical stage durations stacked, per function and mode."}
	if stages == nil {
		for _, r := range rows {
			for s := range r.Stages {
				if !slices.Contains(stages, s) {
					stages = append(stages, s)
				}
			}
		}
		slices.SortFunc(stages, compareStages)
	}
	p := newPlot(f.Title, "ms", "")
	// NominalY puts its first label at the bottom: feed the rows reversed.
	rev := slices.Clone(rows)
	slices.Reverse(rev)
	labels := make([]string, len(rev))
	for i, r := range rev {
		labels[i] = r.Function + " / " + r.Mode
	}
	var below *plotter.BarChart
	for j, s := range stages {
		vals := make(plotter.Values, len(rev))
		for i, r := range rev {
			vals[i] = r.Stages[s]
		}
		bc, err := plotter.NewBarChart(vals, stageBar)
		if err != nil {
			return f, fmt.Errorf("report: plot %s: %w", name, err)
		}
		bc.Horizontal = true
		bc.Color = plotutil.Color(j)
		bc.LineStyle.Width = 0
		if below != nil {
			bc.StackOn(below)
		}
		below = bc
		p.Add(bc)
		p.Legend.Add(s, bc)
	}
	p.NominalY(labels...)
	p.Y.Min, p.Y.Max = -0.5, float64(len(rows))-0.5
	return f, save(p, dir, name, plotW, max(plotH, vg.Length(len(rows))*stageRow+1.2*vg.Inch))
}

// A stage bar's thickness and the height each row takes (points).
const (
	stageBar vg.Length = 10
	stageRow vg.Length = 15
)

// Series is one line of a line plot.
type Series struct {
	Name string
	X, Y []float64
}

// PlotLines writes a line per series; logX/logY put that axis on a log
// scale (non-positive points are then left out).
func PlotLines(dir, name, title, xlabel, ylabel string, series []Series, logX, logY bool) (Figure, error) {
	f := Figure{Name: name, Title: title}
	p := newPlot(title, xlabel, ylabel)
	for j, s := range series {
		var xys plotter.XYs
		for i := range s.X {
			if (logX && s.X[i] <= 0) || (logY && s.Y[i] <= 0) || math.IsNaN(s.Y[i]) {
				continue
			}
			xys = append(xys, plotter.XY{X: s.X[i], Y: s.Y[i]})
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return f, fmt.Errorf("report: plot %s: %w", name, err)
		}
		l.Color = plotutil.Color(j)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		if p.X.Min > 0 {
			p.X.Min, p.X.Max = p.X.Min/1.5, p.X.Max*1.5
		}
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		if p.Y.Min > 0 {
			p.Y.Min, p.Y.Max = p.Y.Min/1.5, p.Y.Max*1.5
		}
	} else {
		margin(p)
	}
	return f, save(p, dir, name, plotW, plotH)
}

// CDF returns the empirical distribution of samples as a series: sorted
// values against the fraction of samples at or below them.
func CDF(name string, samples []float64) Series {
	s := Series{Name: name, X: slices.Clone(samples)}
	slices.Sort(s.X)
	for i := range s.X {
		s.Y = append(s.Y, float64(i+1)/float64(len(s.X)))
	}
	return s
}

// PlotCDF writes latency CDFs, one line per named sample set (a mode, or a
// start kind), on a log latency axis.
func PlotCDF(dir, name string, samples map[string][]float64) (Figure, error) {
	var series []Series
	for _, k := range slices.Sorted(maps.Keys(samples)) {
		series = append(series, CDF(k, samples[k]))
	}
	f, err := PlotLines(dir, name, "Latency CDF", "latency (ms, log scale)", "fraction of invocations", series, true, false)
	f.Caption = "Empirical distribution of latencies."
	return f, err
}
