package api

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Metric is one metric of a Server-Timing header (W3C Server Timing).
type Metric struct {
	Name string
	// Dur is the duration in milliseconds; HasDur says whether it was given.
	Dur    float64
	HasDur bool
	// Desc is the description, "" when not given.
	Desc string
}

// FormatServerTiming writes ms as a Server-Timing header value, the one
// encoding of the header: metrics separated by ", ", a duration (when
// HasDur) in milliseconds with 3 decimals, a description (when not empty)
// quoted, e.g.
//
//	queue;dur=0.004, start;dur=0.940;desc="restore:bulk", faults;desc="0"
func FormatServerTiming(ms []Metric) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Name)
		if m.HasDur {
			b.WriteString(";dur=")
			b.WriteString(strconv.FormatFloat(m.Dur, 'f', 3, 64))
		}
		if m.Desc != "" {
			b.WriteString(";desc=")
			b.WriteString(strconv.Quote(m.Desc))
		}
	}
	return b.String()
}

// ParseServerTiming parses a Server-Timing header value: comma-separated
// metrics with optional dur and desc parameters, desc a token or a quoted
// string. Unknown parameters are ignored, so the server can add some
// without breaking old clients. Errors wrap errdefs.ErrInvalid.
func ParseServerTiming(v string) ([]Metric, error) {
	var out []Metric
	for _, part := range splitOutsideQuotes(v, ',') {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		params := splitOutsideQuotes(part, ';')
		m := Metric{Name: strings.TrimSpace(params[0])}
		if m.Name == "" {
			return nil, fmt.Errorf("server-timing %q: metric without a name: %w", part, errdefs.ErrInvalid)
		}
		for _, p := range params[1:] {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			val = strings.TrimSpace(val)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "dur":
				d, err := strconv.ParseFloat(val, 64)
				if err != nil {
					return nil, fmt.Errorf("server-timing %s: dur %q is not a number: %w", m.Name, val, errdefs.ErrInvalid)
				}
				m.Dur, m.HasDur = d, true
			case "desc":
				if strings.HasPrefix(val, `"`) {
					s, err := strconv.Unquote(val)
					if err != nil {
						return nil, fmt.Errorf("server-timing %s: desc %s: %w", m.Name, val, errdefs.ErrInvalid)
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
		switch c := s[i]; {
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

// Timing is what an invocation's Server-Timing header says about where its
// latency went, in the fields the load generator and the benchmark suite
// record. Durations are milliseconds.
type Timing struct {
	QueueMs float64 `json:"queue_ms"`
	StartMs float64 `json:"start_ms"`
	ExecMs  float64 `json:"exec_ms"`
	// StartKind is "cold", "warm" or "restore" (from the start stage's
	// desc); empty when the header did not say.
	StartKind string `json:"start_kind,omitempty"`
	// RestoreMode is the mode of a restore ("reap", "lazy", ...).
	RestoreMode string `json:"restore_mode,omitempty"`
	// Stages holds the other stages the server reported (instantiate,
	// init, map, prefetch), in milliseconds.
	Stages map[string]float64 `json:"stages_ms,omitempty"`
	// Faults and WSBytes are the restore's lazily served page faults and
	// working-set size, when reported.
	Faults  int64 `json:"faults,omitempty"`
	WSBytes int64 `json:"ws_bytes,omitempty"`
	// Snapshot says where the serving instance came from: warm, local,
	// store-cache, store-peer, store-remote (a restore from the snapshot
	// store, by the tier that served most of its chunks: the worker's own
	// caches, a peer's disk cache, the object store) or cold. Worker and
	// Placement name the cluster worker that served and the placement
	// rule that chose it (empty outside a cluster).
	Snapshot  string `json:"snapshot,omitempty"`
	Worker    string `json:"worker,omitempty"`
	Placement string `json:"placement,omitempty"`
	// StoreBytes are, for a restore from the store, the bytes of chunks
	// each class of tier served ("cache", "peer", "remote"; only those
	// that served any), from the read-cache, read-peer and read-remote
	// metrics.
	StoreBytes map[string]int64 `json:"store_bytes,omitempty"`
}

// StoreReadPrefix prefixes the Server-Timing metrics that count the bytes
// of a store restore's chunks by the class of tier that served them:
// read-cache, read-peer, read-remote.
const StoreReadPrefix = "read-"

// Cold reports whether the invocation paid for a new instance: a cold boot
// or a restore. The load generator's cold-start rate counts these.
func (t Timing) Cold() bool { return t.StartKind == "cold" || t.StartKind == "restore" }

// ParseTiming parses a Server-Timing header value (ParseServerTiming) into
// a Timing. Metric names are compared in lower case; unknown metrics with
// a duration land in Stages, and the others are ignored.
func ParseTiming(v string) (Timing, error) {
	ms, err := ParseServerTiming(v)
	if err != nil {
		return Timing{}, err
	}
	var t Timing
	for _, m := range ms {
		switch name := strings.ToLower(m.Name); name {
		case "queue":
			t.QueueMs = m.Dur
		case "start":
			t.StartMs = m.Dur
			kind, mode, _ := strings.Cut(m.Desc, ":")
			t.StartKind, t.RestoreMode = kind, mode
		case "exec":
			t.ExecMs = m.Dur
		case "faults":
			t.Faults, _ = strconv.ParseInt(m.Desc, 10, 64)
		case "ws":
			t.WSBytes, _ = strconv.ParseInt(m.Desc, 10, 64)
		case "snapshot":
			t.Snapshot = m.Desc
		case "worker":
			t.Worker = m.Desc
		case "placement":
			t.Placement = m.Desc
		case StoreReadPrefix + "cache", StoreReadPrefix + "peer", StoreReadPrefix + "remote":
			if n, err := strconv.ParseInt(m.Desc, 10, 64); err == nil {
				if t.StoreBytes == nil {
					t.StoreBytes = map[string]int64{}
				}
				t.StoreBytes[strings.TrimPrefix(name, StoreReadPrefix)] = n
			}
		default:
			if m.HasDur {
				if t.Stages == nil {
					t.Stages = map[string]float64{}
				}
				t.Stages[name] = m.Dur
			}
		}
	}
	return t, nil
}
