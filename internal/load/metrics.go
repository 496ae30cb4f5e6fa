package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MemoryMetrics are the Prometheus metrics a memory sample reads, in order
// of preference: the worker's thaw_memory_reserved_bytes (what its memory
// budget has charged: live instances' memory caps plus idle pooled regions,
// so an upper bound on instance memory rather than pages touched), else the
// process's resident set size, which the Prometheus Go client exports on
// Linux (for servers that are not a thaw worker).
var MemoryMetrics = []string{"thaw_memory_reserved_bytes", "process_resident_memory_bytes"}

// MemorySample is the server's memory use at one moment of a run.
type MemorySample struct {
	// AtMs is the offset from the run's start.
	AtMs float64 `json:"at_ms"`
	// Bytes sums every series of Metric.
	Bytes  float64 `json:"bytes"`
	Metric string  `json:"metric"`
}

func sampleMemory(ctx context.Context, client *http.Client, url string, every time.Duration, start time.Time) ([]MemorySample, int) {
	var out []MemorySample
	failures := 0
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		s, err := ScrapeMemory(ctx, client, url)
		if err != nil {
			if ctx.Err() != nil {
				return out, failures
			}
			failures++
		} else {
			s.AtMs = ms(time.Since(start))
			out = append(out, s)
		}
		select {
		case <-ctx.Done():
			return out, failures
		case <-tick.C:
		}
	}
}

// ScrapeMemory fetches a Prometheus text exposition from url and returns
// the first of MemoryMetrics it holds.
func ScrapeMemory(ctx context.Context, client *http.Client, url string) (MemorySample, error) {
	resp, cancel, err := get(ctx, client, url, nil)
	if err != nil {
		return MemorySample{}, fmt.Errorf("scrape: %w", err)
	}
	defer cancel()
	defer resp.Body.Close()
	vals, err := ParseMetrics(resp.Body, MemoryMetrics...)
	if err != nil {
		return MemorySample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	for _, m := range MemoryMetrics {
		if v, ok := vals[m]; ok {
			return MemorySample{Bytes: v, Metric: m}, nil
		}
	}
	return MemorySample{}, fmt.Errorf("scrape %s: none of %v exported", url, MemoryMetrics)
}

// ParseMetrics reads a Prometheus text exposition (format 0.0.4, what
// /metrics serves) and returns, for each of names it holds as a gauge,
// counter or untyped metric, the sum of its series' values (a gauge split
// by labels, such as a count per function, sums to the total). Other
// metrics are ignored; an exposition that does not parse is an error.
func ParseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]float64{}
	for _, name := range names {
		fam, ok := fams[name]
		if !ok {
			continue
		}
		var sum float64
		var found bool
		for _, m := range fam.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Untyped != nil:
				sum += m.GetUntyped().GetValue()
			default:
				continue // a histogram or summary has no one value
			}
			found = true
		}
		if found {
			out[name] = sum
		}
	}
	return out, nil
}
