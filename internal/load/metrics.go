package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MemoryMetrics are the Prometheus metrics a memory sample reads, in order
// of preference: thaw's own gauge of instance memory when the server
// exports one, else the process's resident set size, which the Prometheus
// Go client exports on Linux.
var MemoryMetrics = []string{"thaw_memory_bytes", "process_resident_memory_bytes"}

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
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return MemorySample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return MemorySample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return MemorySample{}, fmt.Errorf("scrape %s: status %s", url, resp.Status)
	}
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

// ParseMetrics reads a Prometheus text exposition and returns, for each of
// names it holds, the sum of its series' values (a gauge split by labels,
// such as memory per function, sums to the total). Comments, other metrics
// and unparsable lines are skipped: a scrape should survive whatever else
// the server exports.
func ParseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ \t"); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if !want[name] {
			continue
		}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
}
