package suite

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/thaw-run/thaw/internal/report"
)

// PaperRow is one function of REAP's published per-function latencies
// (Ustiugov et al., ASPLOS'21), in ms, read off the paper's figures and so
// approximate. Setting: Firecracker microVMs (1 vCPU, 256 MB) running
// Python functions, SATA SSD, page cache flushed before each cold call.
type PaperRow struct {
	Function string
	WarmMs   float64
	// VanillaMs is a restore from a plain snapshot, every page faulted
	// in on demand; ReapMs a restore with REAP's prefetched working set.
	VanillaMs float64
	ReapMs    float64
}

// REAP lists the paper's functions. thaw's suite ports eight of them
// under the same names; lr_training and video_processing have no port
// (video_frames is a different workload and is not compared).
var REAP = []PaperRow{
	{"helloworld", 1, 232, 60},
	{"chameleon", 29, 437, 97},
	{"pyaes", 3, 309, 55},
	{"image_rotate", 37, 594, 207},
	{"json_serdes", 27, 535, 127},
	{"lr_serving", 2, 647, 66},
	{"cnn_serving", 192, 1424, 237},
	{"rnn_serving", 25, 503, 82},
	{"lr_training", 4991, 8057, 6090},
	{"video_processing", 1476, 2642, 2540},
}

// Comparison sets one function's REAP figures beside thaw's. thaw's lazy
// mode plays the vanilla snapshot. Ratios are NaN when a mode was not
// measured.
type Comparison struct {
	Paper PaperRow
	// ThawMs holds thaw's p50 per mode.
	ThawMs map[string]float64
	// PaperReapOverVanilla is REAP/vanilla; ReapOverLazy and BulkOverLazy
	// are thaw's counterparts; ColdOverBulk is how much a cold boot costs
	// over thaw's best restore.
	PaperReapOverVanilla float64
	ReapOverLazy         float64
	BulkOverLazy         float64
	ColdOverBulk         float64
}

// Compare pairs rows with REAP's table by function name.
func Compare(rows []report.Row) []Comparison {
	p50 := map[string]map[string]float64{}
	for _, r := range rows {
		if r.Trials == 0 {
			continue
		}
		if p50[r.Function] == nil {
			p50[r.Function] = map[string]float64{}
		}
		p50[r.Function][r.Mode] = r.P50Ms
	}
	ratio := func(m map[string]float64, a, b string) float64 {
		x, okA := m[a]
		y, okB := m[b]
		if !okA || !okB || y <= 0 {
			return math.NaN()
		}
		return x / y
	}
	var out []Comparison
	for _, p := range REAP {
		m, ok := p50[p.Function]
		if !ok {
			continue
		}
		out = append(out, Comparison{
			Paper: p, ThawMs: m, PaperReapOverVanilla: p.ReapMs / p.VanillaMs,
			ReapOverLazy: ratio(m, "reap", "lazy"), BulkOverLazy: ratio(m, "bulk", "lazy"), ColdOverBulk: ratio(m, "cold", "bulk"),
		})
	}
	return out
}

// GeoMean returns the geometric mean of the finite positive values of xs,
// NaN when there are none: the mean REAP's paper reports for speedups.
func GeoMean(xs []float64) float64 {
	sum, n := 0.0, 0
	for _, x := range xs {
		if x > 0 && !math.IsInf(x, 0) && !math.IsNaN(x) {
			sum += math.Log(x)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return math.Exp(sum / float64(n))
}

// WriteComparison writes cs as a Markdown table with a geometric-mean row.
func WriteComparison(w io.Writer, cs []Comparison) error {
	f := func(v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		if v >= 100 {
			return fmt.Sprintf("%.0f", v)
		}
		if v >= 10 {
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.2f", v)
	}
	mode := func(c Comparison, m string) float64 {
		if v, ok := c.ThawMs[m]; ok {
			return v
		}
		return math.NaN()
	}
	var b strings.Builder
	b.WriteString("| function | REAP paper: warm | vanilla | REAP | REAP/vanilla | thaw: warm | lazy | reap | bulk | cold | reap/lazy | bulk/lazy | cold/bulk |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var pr, rl, bl, cb []float64
	for _, c := range cs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Paper.Function,
			f(c.Paper.WarmMs), f(c.Paper.VanillaMs), f(c.Paper.ReapMs), f(c.PaperReapOverVanilla),
			f(mode(c, "warm")), f(mode(c, "lazy")), f(mode(c, "reap")), f(mode(c, "bulk")), f(mode(c, "cold")),
			f(c.ReapOverLazy), f(c.BulkOverLazy), f(c.ColdOverBulk))
		pr, rl, bl, cb = append(pr, c.PaperReapOverVanilla), append(rl, c.ReapOverLazy), append(bl, c.BulkOverLazy), append(cb, c.ColdOverBulk)
	}
	fmt.Fprintf(&b, "| geometric mean | | | | %s | | | | | | %s | %s | %s |\n", f(GeoMean(pr)), f(GeoMean(rl)), f(GeoMean(bl)), f(GeoMean(cb)))
	_, err := io.WriteString(w, b.String())
	return err
}
