package trace

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Spacing chooses how a minute's invocations are spread within the minute.
// The trace only says how many invocations each minute holds; like vHive's
// In-Vitro loader, the replayer draws inter-arrival times and scales them so
// that exactly that many arrivals fall inside the minute.
type Spacing int

const (
	// Exponential spacing: given n arrivals in a minute, their times are
	// distributed as n points of a Poisson process conditioned on the count,
	// i.e. n+1 exponential gaps normalised to the minute.
	Exponential Spacing = iota
	// Uniform spacing: n+1 uniformly distributed gaps normalised to the
	// minute (In-Vitro's "uniform" inter-arrival distribution).
	Uniform
	// Equidistant spacing: arrivals at the centres of n equal slices of the
	// minute; no randomness.
	Equidistant
)

// String returns the name ParseSpacing accepts.
func (s Spacing) String() string {
	switch s {
	case Exponential:
		return "exponential"
	case Uniform:
		return "uniform"
	case Equidistant:
		return "equidistant"
	}
	return fmt.Sprintf("Spacing(%d)", int(s))
}

// ParseSpacing parses "exponential" (or "poisson"), "uniform" or "equidistant".
func ParseSpacing(s string) (Spacing, error) {
	switch s {
	case "exponential", "poisson":
		return Exponential, nil
	case "uniform":
		return Uniform, nil
	case "equidistant":
		return Equidistant, nil
	}
	return 0, fmt.Errorf("spacing %q: want exponential, uniform or equidistant: %w", s, errdefs.ErrInvalid)
}

// MinuteOffsets returns the offsets of n arrivals within a minute lasting
// minute, in increasing order and all in [0, minute).
func MinuteOffsets(n int, minute time.Duration, s Spacing, rng *rand.Rand) []time.Duration {
	if n <= 0 {
		return nil
	}
	out := make([]time.Duration, n)
	if s == Equidistant {
		slice := float64(minute) / float64(n)
		for i := range out {
			out[i] = time.Duration(slice * (float64(i) + 0.5))
		}
		return out
	}
	// n+1 gaps so that neither the first nor the last arrival is pinned to
	// an edge of the minute.
	gaps := make([]float64, n+1)
	sum := 0.0
	for i := range gaps {
		if s == Uniform {
			gaps[i] = rng.Float64()
		} else {
			gaps[i] = rng.ExpFloat64()
		}
		sum += gaps[i]
	}
	if sum == 0 {
		return MinuteOffsets(n, minute, Equidistant, rng)
	}
	acc := 0.0
	for i := range out {
		acc += gaps[i]
		out[i] = min(time.Duration(acc/sum*float64(minute)), minute-1)
	}
	return out
}

// Arrivals returns the arrival times of counts (invocations per minute),
// each minute lasting minute, relative to the start of the first minute.
// The same seed gives the same times.
func Arrivals(counts []int, minute time.Duration, s Spacing, seed uint64) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, 0x7468617721))
	var out []time.Duration
	for i, n := range counts {
		base := time.Duration(i) * minute
		for _, o := range MinuteOffsets(n, minute, s, rng) {
			out = append(out, base+o)
		}
	}
	return out
}
