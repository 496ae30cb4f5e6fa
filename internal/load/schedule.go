// Package load drives a thaw server with open-loop load and records what
// every invocation cost.
//
// Open loop means requests leave at their scheduled times whatever the
// server does: a slow server does not slow the generator down (which would
// hide queueing, the "coordinated omission" of closed-loop benchmarks).
// The only back-pressure is a bound on requests in flight; an arrival that
// finds the bound reached is not sent and is counted as dropped.
//
// A run is: build a schedule ([]Arrival) with Constant, Poisson, Bursts or
// FromTrace; pass it to Run with Options; summarise the Result with
// Summarize. internal/report writes the result to a run directory.
package load

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/trace"
)

// Arrival is one scheduled invocation.
type Arrival struct {
	// At is the offset from the start of the run.
	At time.Duration
	// Function is the thaw function to invoke.
	Function string
}

func checkRate(rate float64, d time.Duration, fns []string) error {
	switch {
	case rate <= 0:
		return fmt.Errorf("load: rate %v: want > 0: %w", rate, errdefs.ErrInvalid)
	case d <= 0:
		return fmt.Errorf("load: duration %v: want > 0: %w", d, errdefs.ErrInvalid)
	case len(fns) == 0:
		return fmt.Errorf("load: no functions: %w", errdefs.ErrInvalid)
	}
	return nil
}

// Constant schedules rate requests per second for d, evenly spaced, cycling
// through fns.
func Constant(rate float64, d time.Duration, fns []string) ([]Arrival, error) {
	if err := checkRate(rate, d, fns); err != nil {
		return nil, err
	}
	var out []Arrival
	gap := float64(time.Second) / rate
	for i := 0; ; i++ {
		at := time.Duration(float64(i) * gap)
		if at >= d {
			return out, nil
		}
		out = append(out, Arrival{At: at, Function: fns[i%len(fns)]})
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6c6f6164)) }

// Poisson schedules a Poisson process of rate requests per second for d:
// exponential inter-arrival times, each request to a function of fns picked
// uniformly at random (so each function sees a Poisson process of
// rate/len(fns)). The same seed gives the same schedule.
func Poisson(rate float64, d time.Duration, fns []string, seed uint64) ([]Arrival, error) {
	return Bursts(Burst{On: d, OnRate: rate}, d, fns, seed)
}

// Burst describes on/off load: OnRate requests per second (Poisson) for On,
// then OffRate (possibly 0) for Off, repeating.
type Burst struct {
	On, Off         time.Duration
	OnRate, OffRate float64
}

// Bursts schedules b for d, functions picked uniformly at random from fns.
// Because the exponential distribution is memoryless, restarting the
// process at each phase boundary with the new rate is exact.
func Bursts(b Burst, d time.Duration, fns []string, seed uint64) ([]Arrival, error) {
	if err := checkRate(b.OnRate, d, fns); err != nil {
		return nil, err
	}
	if b.On <= 0 || b.Off < 0 || b.OffRate < 0 {
		return nil, fmt.Errorf("load: burst %+v: want On > 0, Off and OffRate >= 0: %w", b, errdefs.ErrInvalid)
	}
	rng := newRand(seed)
	var out []Arrival
	period := b.On + b.Off
	for phase := time.Duration(0); phase < d; phase += period {
		for _, p := range []struct {
			start, end time.Duration
			rate       float64
		}{{phase, phase + b.On, b.OnRate}, {phase + b.On, phase + period, b.OffRate}} {
			end := min(p.end, d)
			if p.rate <= 0 || p.start >= end {
				continue
			}
			at := float64(p.start)
			for {
				at += rng.ExpFloat64() / p.rate * float64(time.Second)
				if at >= float64(end) {
					break
				}
				out = append(out, Arrival{At: time.Duration(at), Function: fns[rng.IntN(len(fns))]})
			}
		}
	}
	return out, nil
}

// FromTrace schedules a sampled Azure trace replay.
func FromTrace(s *trace.Sample) []Arrival {
	arr := s.Arrivals()
	out := make([]Arrival, len(arr))
	for i, a := range arr {
		out[i] = Arrival{At: a.At, Function: a.Target}
	}
	return out
}
