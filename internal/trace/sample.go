package trace

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Selection chooses which trace functions a sample keeps.
type Selection int

const (
	// ByRank keeps the K most invoked functions. Deterministic; it favours
	// hot functions, which on thaw are mostly warm.
	ByRank Selection = iota
	// Stratified sorts functions by popularity, cuts the ranking into K
	// strata of equal size and picks one function from each at random
	// (seeded), so the sample spans hot, lukewarm and rare functions as the
	// whole trace does. Rare functions are the ones that start cold.
	Stratified
)

// Mapping chooses which thaw function replays each sampled trace function.
type Mapping int

const (
	// RoundRobin maps the i-th sampled function (in popularity order) to
	// Targets[i mod len(Targets)].
	RoundRobin Mapping = iota
	// ByDuration ranks the sampled functions by their median execution time
	// from the durations file and cuts the ranking into len(Targets) classes
	// of equal size: the shortest class goes to Targets[0], the longest to
	// the last target, so Targets must be listed from the cheapest thaw
	// function to the most expensive. Functions without duration data are
	// mapped round-robin.
	ByDuration
)

// ParseSelection parses "stratified" or "rank".
func ParseSelection(s string) (Selection, error) {
	switch s {
	case "stratified":
		return Stratified, nil
	case "rank":
		return ByRank, nil
	}
	return 0, fmt.Errorf("selection %q: want stratified or rank: %w", s, errdefs.ErrInvalid)
}

// ParseMapping parses "round-robin" or "duration".
func ParseMapping(s string) (Mapping, error) {
	switch s {
	case "round-robin":
		return RoundRobin, nil
	case "duration":
		return ByDuration, nil
	}
	return 0, fmt.Errorf("mapping %q: want round-robin or duration: %w", s, errdefs.ErrInvalid)
}

// SampleOptions scales a trace down to one machine.
type SampleOptions struct {
	// Functions is K, how many trace functions to keep; 0 keeps them all.
	Functions int
	// Selection chooses the K functions.
	Selection Selection
	// Seed makes Stratified selection and the arrival times reproducible.
	Seed uint64
	// FirstMinute is the index (not the label) of the first trace minute to
	// replay; Minutes is how many (0: to the end of the trace).
	FirstMinute, Minutes int
	// Minute is how long one trace minute lasts in the replay: 60s replays
	// in real time, 1s compresses an hour into a minute. Default 60s.
	Minute time.Duration
	// MaxRate caps the replay's total request rate (requests per second of
	// replay time) at its busiest minute by scaling every count by the same
	// factor, which keeps the shape of the load; 0 means no cap.
	MaxRate float64
	// Targets are the thaw function names the trace functions map onto.
	Targets []string
	// Mapping chooses how trace functions map onto Targets.
	Mapping Mapping
	// Spacing spreads each minute's invocations within the minute.
	Spacing Spacing
}

// Assignment is one sampled trace function and what replays it.
type Assignment struct {
	Function *Function
	// Target is the thaw function that replays it.
	Target string
	// Counts are the invocations per replayed minute after the window and
	// the rate cap.
	Counts []int
}

// Sample is a trace scaled down for replay.
type Sample struct {
	Options SampleOptions
	// Assignments in popularity order (most invoked first).
	Assignments []Assignment
	// Scale is the factor the rate cap applied to every count (1 without).
	Scale float64
}

// Sample selects, scales and maps functions of t as opts say.
func (t *Trace) Sample(opts SampleOptions) (*Sample, error) {
	if opts.Minute == 0 {
		opts.Minute = time.Minute
	}
	switch {
	case len(opts.Targets) == 0:
		return nil, fmt.Errorf("trace sample: no target functions: %w", errdefs.ErrInvalid)
	case opts.Minute < 0 || opts.Functions < 0 || opts.MaxRate < 0 || opts.FirstMinute < 0 || opts.Minutes < 0:
		return nil, fmt.Errorf("trace sample: negative option: %w", errdefs.ErrInvalid)
	case opts.FirstMinute >= len(t.Minutes):
		return nil, fmt.Errorf("trace sample: first minute %d past the trace's %d minutes: %w", opts.FirstMinute, len(t.Minutes), errdefs.ErrInvalid)
	}
	end := len(t.Minutes)
	if opts.Minutes > 0 {
		end = min(end, opts.FirstMinute+opts.Minutes)
	}

	// Rank the functions invoked in the window by popularity; ties break on
	// the key so that the ranking does not depend on file order.
	type ranked struct {
		f     *Function
		total int
	}
	var fs []ranked
	for _, f := range t.Functions {
		n := 0
		for _, c := range f.Counts[opts.FirstMinute:end] {
			n += c
		}
		if n > 0 {
			fs = append(fs, ranked{f, n})
		}
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("trace sample: no invocations in minutes [%d,%d): %w", opts.FirstMinute, end, errdefs.ErrInvalid)
	}
	slices.SortFunc(fs, func(a, b ranked) int {
		if c := cmp.Compare(b.total, a.total); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.f.Owner, b.f.Owner), cmp.Compare(a.f.App, b.f.App), cmp.Compare(a.f.Function, b.f.Function))
	})
	k := opts.Functions
	if k == 0 || k > len(fs) {
		k = len(fs)
	}
	var picked []ranked
	switch opts.Selection {
	case ByRank:
		picked = fs[:k]
	case Stratified:
		rng := rand.New(rand.NewPCG(opts.Seed, 0x737472617461))
		for i := range k {
			lo, hi := i*len(fs)/k, (i+1)*len(fs)/k
			picked = append(picked, fs[lo+rng.IntN(hi-lo)])
		}
	default:
		return nil, fmt.Errorf("trace sample: unknown selection %d: %w", opts.Selection, errdefs.ErrInvalid)
	}

	s := &Sample{Options: opts, Scale: 1}
	for _, p := range picked {
		s.Assignments = append(s.Assignments, Assignment{Function: p.f, Counts: slices.Clone(p.f.Counts[opts.FirstMinute:end])})
	}
	if err := s.mapTargets(); err != nil {
		return nil, err
	}
	if opts.MaxRate > 0 {
		peak := 0
		for m := range end - opts.FirstMinute {
			n := 0
			for _, a := range s.Assignments {
				n += a.Counts[m]
			}
			peak = max(peak, n)
		}
		if rate := float64(peak) / opts.Minute.Seconds(); rate > opts.MaxRate {
			s.Scale = opts.MaxRate / rate
			for i := range s.Assignments {
				scaleCounts(s.Assignments[i].Counts, s.Scale)
			}
		}
	}
	return s, nil
}

// scaleCounts multiplies counts by f, carrying the rounding error from
// minute to minute (error diffusion) so that a function's total is scaled
// to within one invocation, without randomness, and rare functions keep
// some invocations instead of rounding to nothing.
func scaleCounts(counts []int, f float64) {
	acc, emitted := 0.0, 0
	for i, c := range counts {
		acc += float64(c) * f
		n := int(math.Floor(acc+1e-9)) - emitted
		counts[i] = n
		emitted += n
	}
}

func (s *Sample) mapTargets() error {
	targets := s.Options.Targets
	switch s.Options.Mapping {
	case RoundRobin:
		for i := range s.Assignments {
			s.Assignments[i].Target = targets[i%len(targets)]
		}
	case ByDuration:
		var known []int
		rr := 0
		for i, a := range s.Assignments {
			if a.Function.Duration != nil {
				known = append(known, i)
			} else {
				s.Assignments[i].Target = targets[rr%len(targets)]
				rr++
			}
		}
		slices.SortStableFunc(known, func(a, b int) int {
			return cmp.Compare(medianMs(s.Assignments[a].Function.Duration), medianMs(s.Assignments[b].Function.Duration))
		})
		for rank, i := range known {
			s.Assignments[i].Target = targets[rank*len(targets)/len(known)]
		}
	default:
		return fmt.Errorf("trace sample: unknown mapping %d: %w", s.Options.Mapping, errdefs.ErrInvalid)
	}
	return nil
}

func medianMs(d *Duration) float64 {
	if v, ok := d.Percentiles[50]; ok {
		return v
	}
	return d.AverageMs
}

// Minutes returns how many trace minutes the sample replays.
func (s *Sample) Minutes() int {
	if len(s.Assignments) == 0 {
		return 0
	}
	return len(s.Assignments[0].Counts)
}

// Duration returns how long the replay lasts.
func (s *Sample) Duration() time.Duration {
	return time.Duration(s.Minutes()) * s.Options.Minute
}

// Total returns the number of invocations the sample replays.
func (s *Sample) Total() int {
	n := 0
	for _, a := range s.Assignments {
		for _, c := range a.Counts {
			n += c
		}
	}
	return n
}

// keySeed derives a per-function seed from its key.
func keySeed(k Key) uint64 {
	h := fnv.New64a()
	h.Write([]byte(k.Owner + "/" + k.App + "/" + k.Function))
	return h.Sum64()
}

// Arrival is one scheduled invocation of a replay.
type Arrival struct {
	// At is the offset from the start of the replay.
	At time.Duration
	// Target is the thaw function to invoke.
	Target string
	// Source is the trace function this invocation replays.
	Source Key
}

// Arrivals returns every invocation of the replay in time order. Each
// function's times are drawn from their own stream derived from the seed,
// so adding a function to a sample does not move the others' arrivals.
func (s *Sample) Arrivals() []Arrival {
	var out []Arrival
	for _, a := range s.Assignments {
		for _, at := range Arrivals(a.Counts, s.Options.Minute, s.Options.Spacing, s.Options.Seed^keySeed(a.Function.Key)) {
			out = append(out, Arrival{At: at, Target: a.Target, Source: a.Function.Key})
		}
	}
	slices.SortStableFunc(out, func(a, b Arrival) int { return cmp.Compare(a.At, b.At) })
	return out
}
