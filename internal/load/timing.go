package load

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Timing is what an invocation's Server-Timing header says about where its
// latency went. Durations are milliseconds.
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
}

// Cold reports whether the invocation paid for a new instance: a cold boot
// or a restore. The load generator's cold-start rate counts these.
func (t Timing) Cold() bool { return t.StartKind == "cold" || t.StartKind == "restore" }

// ParseServerTiming parses the Server-Timing header thaw's server writes:
// comma-separated metrics with optional dur and desc parameters, desc a
// token or a quoted string, e.g.
//
//	queue;dur=0.01, start;dur=12.3;desc="restore:reap", exec;dur=1.2
//
// Unknown metrics with a duration land in Stages; unknown parameters are
// ignored so that the server can add some without breaking old clients.
func ParseServerTiming(v string) (Timing, error) {
	var t Timing
	for _, part := range splitUnquoted(v, ',') {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		params := splitUnquoted(part, ';')
		name := strings.ToLower(strings.TrimSpace(params[0]))
		if name == "" {
			return Timing{}, fmt.Errorf("server-timing %q: metric without a name: %w", part, errdefs.ErrInvalid)
		}
		var dur float64
		var hasDur bool
		var desc string
		for _, p := range params[1:] {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			val = strings.TrimSpace(val)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "dur":
				d, err := strconv.ParseFloat(val, 64)
				if err != nil {
					return Timing{}, fmt.Errorf("server-timing %s: dur %q is not a number: %w", name, val, errdefs.ErrInvalid)
				}
				dur, hasDur = d, true
			case "desc":
				if strings.HasPrefix(val, `"`) {
					s, err := strconv.Unquote(val)
					if err != nil {
						return Timing{}, fmt.Errorf("server-timing %s: desc %s: %w", name, val, errdefs.ErrInvalid)
					}
					val = s
				}
				desc = val
			}
		}
		switch name {
		case "queue":
			t.QueueMs = dur
		case "start":
			t.StartMs = dur
			kind, mode, _ := strings.Cut(desc, ":")
			t.StartKind, t.RestoreMode = kind, mode
		case "exec":
			t.ExecMs = dur
		case "faults":
			t.Faults, _ = strconv.ParseInt(desc, 10, 64)
		case "ws":
			t.WSBytes, _ = strconv.ParseInt(desc, 10, 64)
		default:
			if hasDur {
				if t.Stages == nil {
					t.Stages = map[string]float64{}
				}
				t.Stages[name] = dur
			}
		}
	}
	return t, nil
}

// splitUnquoted splits s at sep, except inside double-quoted strings.
func splitUnquoted(s string, sep byte) []string {
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
