package load

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/trace"
)

// Config is a load run as `thaw load` takes it: an arrival process or a
// trace replay, the functions it targets and the bounds of the run. Its
// JSON is what a run directory records as the run's configuration. Plan
// validates it; its errors name the settings as `thaw load`'s flags.
type Config struct {
	Rate        float64       `json:"rate,omitempty"`
	Duration    time.Duration `json:"duration"`
	Arrivals    string        `json:"arrivals,omitempty"`
	BurstOn     time.Duration `json:"burst_on,omitempty"`
	BurstOff    time.Duration `json:"burst_off,omitempty"`
	OffRate     float64       `json:"off_rate,omitempty"`
	Functions   []string      `json:"functions"`
	Path        string        `json:"path"`
	Trace       string        `json:"trace,omitempty"`
	TraceFns    int           `json:"trace_functions,omitempty"`
	MinuteSecs  float64       `json:"minute_seconds,omitempty"`
	MaxRate     float64       `json:"max_rate,omitempty"`
	Spacing     string        `json:"spacing,omitempty"`
	Selection   string        `json:"selection,omitempty"`
	Mapping     string        `json:"mapping,omitempty"`
	FirstMinute int           `json:"first_minute,omitempty"`
	Seed        uint64        `json:"seed"`
	MaxInFlight int           `json:"max_in_flight"`
	Timeout     time.Duration `json:"timeout"`
	Server      string        `json:"server"`
	// Servers, if set, are several entry points (the workers of a
	// cluster) used instead of Server, spread over by Spread.
	Servers []string `json:"servers,omitempty"`
	Spread  string   `json:"spread,omitempty"`
}

// Entries returns the run's entry points: Servers, else Server.
func (c Config) Entries() []string {
	var out []string
	for _, s := range c.Servers {
		if s = strings.TrimSuffix(strings.TrimSpace(s), "/"); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		out = []string{strings.TrimSuffix(c.Server, "/")}
	}
	return out
}

// Plan is a validated Config's schedule.
type Plan struct {
	// Schedule is the arrivals to send.
	Schedule []Arrival
	// Sample is the trace sample replayed; nil without Config.Trace.
	Sample *trace.Sample
	// Label names the arrival process: constant, poisson, bursts or trace.
	Label string
}

// Plan validates c and builds its schedule, reading the trace if it
// replays one; it sends nothing. Errors wrap errdefs.ErrInvalid, except
// that of a trace that cannot be read.
func (c Config) Plan() (Plan, error) {
	invalid := func(format string, args ...any) (Plan, error) {
		return Plan{}, fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalid)...)
	}
	for _, e := range c.Entries() {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("--server/--servers %q: want http(s)://host[:port]", e)
		}
	}
	if c.Spread != "" && c.Spread != SpreadRoundRobin && c.Spread != SpreadRandom {
		return invalid("--spread %q: want %s or %s", c.Spread, SpreadRoundRobin, SpreadRandom)
	}
	var fns []string
	for _, f := range c.Functions {
		if f = strings.TrimSpace(f); f != "" {
			fns = append(fns, f)
		}
	}
	switch {
	case len(fns) == 0:
		return invalid("--functions: name at least one function to invoke")
	case c.Duration <= 0:
		return invalid("--duration %v: want > 0", c.Duration)
	case c.MaxInFlight < 1:
		return invalid("--max-in-flight %d: want >= 1", c.MaxInFlight)
	case c.Timeout <= 0:
		return invalid("--timeout %v: want > 0", c.Timeout)
	}
	if c.Trace == "" {
		var sched []Arrival
		var err error
		switch c.Arrivals {
		case "constant":
			sched, err = Constant(c.Rate, c.Duration, fns)
		case "poisson":
			sched, err = Poisson(c.Rate, c.Duration, fns, c.Seed)
		case "bursts":
			if c.BurstOn <= 0 || c.BurstOff < 0 || c.OffRate < 0 {
				return invalid("--burst-on must be > 0, --burst-off and --off-rate >= 0")
			}
			if c.Rate <= 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
				return invalid("--rate %v: want > 0", c.Rate)
			}
			sched, err = Bursts(Burst{On: c.BurstOn, Off: c.BurstOff, OnRate: c.Rate, OffRate: c.OffRate}, c.Duration, fns, c.Seed)
		default:
			return invalid("--arrivals %q: want constant, poisson or bursts", c.Arrivals)
		}
		if err != nil {
			return Plan{}, err
		}
		return Plan{Schedule: sched, Label: c.Arrivals}, nil
	}

	spacing, err := trace.ParseSpacing(c.Spacing)
	if err != nil {
		return Plan{}, err
	}
	so := trace.SampleOptions{Functions: c.TraceFns, Seed: c.Seed, FirstMinute: c.FirstMinute,
		MaxRate: c.MaxRate, Targets: fns, Spacing: spacing}
	if so.Selection, err = trace.ParseSelection(c.Selection); err != nil {
		return invalid("--selection %q: want stratified or rank", c.Selection)
	}
	if so.Mapping, err = trace.ParseMapping(c.Mapping); err != nil {
		return invalid("--mapping %q: want round-robin or duration", c.Mapping)
	}
	if c.MinuteSecs <= 0 || math.IsInf(c.MinuteSecs, 0) || math.IsNaN(c.MinuteSecs) {
		return invalid("--minute-seconds %v: want > 0", c.MinuteSecs)
	}
	so.Minute = time.Duration(c.MinuteSecs * float64(time.Second))
	if so.Minute < time.Millisecond {
		return invalid("--minute-seconds %v: want at least 0.001", c.MinuteSecs)
	}
	// Replay just the trace minutes Duration covers.
	so.Minutes = int((c.Duration + so.Minute - 1) / so.Minute)
	tr, err := trace.Load(trace.DirFiles(c.Trace))
	if err != nil {
		return Plan{}, fmt.Errorf("--trace %s: %w", c.Trace, err)
	}
	s, err := tr.Sample(so)
	if err != nil {
		return Plan{}, err
	}
	return Plan{Schedule: FromTrace(s), Sample: s, Label: "trace"}, nil
}
