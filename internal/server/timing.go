package server

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/worker"
)

// Response headers of an invocation.
const (
	// HeaderServerTiming breaks the invocation's latency into stages.
	HeaderServerTiming = "Server-Timing"
	// HeaderStart says how the serving instance started: cold, warm or restore.
	HeaderStart = "X-Thaw-Start"
	// HeaderFallback, when present, says why a restore fell back to a cold boot.
	HeaderFallback = "X-Thaw-Fallback"
)

// Request headers that steer an experiment; they need the management token
// when one is configured, because they let a caller force expensive starts.
const (
	// HeaderMode starts a fresh instance in the given mode (or "warm").
	HeaderMode = "X-Thaw-Mode"
	// HeaderDropCache set to 1 evicts the snapshot from the page cache first.
	HeaderDropCache = "X-Thaw-Drop-Cache"
)

// ServerTiming formats t as a Server-Timing header value (RFC: W3C Server
// Timing): queue, start and exec durations in milliseconds, the start's kind
// in start's description, and for restores the map and prefetch stages and
// the fault and working-set counts as description-only metrics.
func ServerTiming(t worker.Timing) string {
	var b strings.Builder
	metric := func(name string, d time.Duration, desc string) {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s;dur=%.3f", name, float64(d)/float64(time.Millisecond))
		if desc != "" {
			fmt.Fprintf(&b, ";desc=%q", desc)
		}
	}
	count := func(name string, n int64) {
		fmt.Fprintf(&b, ", %s;desc=\"%d\"", name, n)
	}
	desc := t.StartKind
	if t.StartKind == "restore" {
		desc = "restore:" + string(t.Mode)
	}
	metric("queue", t.Queue, "")
	metric("start", t.Start, desc)
	metric("exec", t.Exec, "")
	if t.StartKind == "cold" && t.Init > 0 {
		metric("instantiate", t.Instantiate, "")
		metric("init", t.Init, "")
	}
	if t.Restore != nil {
		metric("map", t.Restore.Map, "")
		metric("prefetch", t.Restore.Prefetch, "")
		metric("instantiate", t.Instantiate, "")
		count("faults", t.Restore.Faults)
		count("ws", t.Restore.WSBytes)
		count("read", t.Restore.BytesRead)
		if t.Restore.Reused {
			// The region came from the pool: pages kept live.
			count("reused", t.Restore.Scrub.Kept)
		}
		if t.Source != "" {
			// local: the snapshot directory; store: the snapshot store.
			fmt.Fprintf(&b, ", source;desc=%q", t.Source)
		}
	}
	return b.String()
}

// TimingMetric is one metric of a Server-Timing header.
type TimingMetric struct {
	Name string
	// Dur is the duration in milliseconds; HasDur says whether it was given.
	Dur    float64
	HasDur bool
	Desc   string
}

// ParseServerTiming parses a Server-Timing header value. It accepts the
// subset thaw writes: comma-separated metrics with dur and desc parameters,
// desc quoted or a token; unknown parameters are ignored.
func ParseServerTiming(v string) ([]TimingMetric, error) {
	var out []TimingMetric
	for _, part := range splitOutsideQuotes(v, ',') {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		params := splitOutsideQuotes(part, ';')
		m := TimingMetric{Name: strings.TrimSpace(params[0])}
		if m.Name == "" {
			return nil, fmt.Errorf("server-timing %q: metric without a name", part)
		}
		for _, p := range params[1:] {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "dur":
				d, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil {
					return nil, fmt.Errorf("server-timing %s: dur %q: %w", m.Name, val, err)
				}
				m.Dur, m.HasDur = d, true
			case "desc":
				val = strings.TrimSpace(val)
				if strings.HasPrefix(val, `"`) {
					s, err := strconv.Unquote(val)
					if err != nil {
						return nil, fmt.Errorf("server-timing %s: desc %s: %w", m.Name, val, err)
					}
					val = s
				}
				m.Desc = val
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// splitOutsideQuotes splits s at sep, except inside double quotes.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
