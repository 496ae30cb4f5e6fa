package trace

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
)

// Synthesize returns a small made-up trace in the Azure 2019 shape: a hot
// steady HTTP function, a diurnal one, a bursty queue function, a timer
// firing every five minutes, a rare function and an orchestration that is
// mostly idle, over minutes labelled from 1. Its hashes are SHA-256 of
// readable names, so it cannot be mistaken for real trace data. It is what
// internal/trace/testdata holds (regenerate with
// `go test ./internal/trace -run TestSyntheticGolden -update`).
func Synthesize(minutes int, seed uint64) *Trace {
	rng := rand.New(rand.NewPCG(seed, 0x73796e7468))
	t := &Trace{}
	for m := range minutes {
		t.Minutes = append(t.Minutes, m+1)
	}
	type spec struct {
		name, trigger string
		count         func(m int) int
		avgMs, p50Ms  float64
		memMb         float64
	}
	poisson := func(mean float64) int {
		// Knuth's method is fine for the small means used here.
		l, k, p := math.Exp(-mean), 0, 1.0
		for {
			p *= rng.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	specs := []spec{
		{"hot-http", "http", func(int) int { return poisson(40) }, 12, 9, 150},
		{"diurnal-http", "http", func(m int) int {
			return poisson(10 + 8*math.Sin(2*math.Pi*float64(m)/float64(minutes)))
		}, 85, 60, 220},
		{"bursty-queue", "queue", func(m int) int {
			if m%10 < 2 {
				return poisson(30)
			}
			return poisson(0.5)
		}, 350, 240, 310},
		{"timer-5min", "timer", func(m int) int {
			if m%5 == 0 {
				return 1
			}
			return 0
		}, 1200, 1100, 90},
		{"rare-event", "event", func(int) int {
			if rng.Float64() < 0.1 {
				return 1
			}
			return 0
		}, 40, 30, 120},
		{"orchestrator", "orchestration", func(m int) int {
			if m == minutes/2 {
				return 3
			}
			return 0
		}, 5, 3, 60},
	}
	for _, s := range specs {
		f := &Function{
			Key:     Key{Owner: fakeHash("owner-" + s.name), App: fakeHash("app-" + s.name), Function: fakeHash("function-" + s.name)},
			Trigger: s.trigger,
			Counts:  make([]int, minutes),
		}
		for m := range minutes {
			f.Counts[m] = s.count(m)
		}
		total := f.Total()
		f.Duration = &Duration{
			AverageMs: s.avgMs, Count: total, MinimumMs: s.p50Ms / 4, MaximumMs: s.avgMs * 10,
			Percentiles: map[int]float64{0: s.p50Ms / 4, 1: s.p50Ms / 3, 25: s.p50Ms * 0.8, 50: s.p50Ms, 75: s.p50Ms * 1.4, 99: s.avgMs * 5, 100: s.avgMs * 10},
		}
		f.Memory = &Memory{
			SampleCount: total + 1, AverageMb: s.memMb,
			Percentiles: map[int]float64{1: s.memMb * 0.8, 5: s.memMb * 0.85, 25: s.memMb * 0.95, 50: s.memMb, 75: s.memMb * 1.05, 95: s.memMb * 1.2, 99: s.memMb * 1.3, 100: s.memMb * 1.5},
		}
		t.Functions = append(t.Functions, f)
	}
	return t
}

func fakeHash(s string) string {
	h := sha256.Sum256([]byte("thaw-synthetic-trace:" + s))
	return hex.EncodeToString(h[:])
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// WriteInvocations writes t's invocations file.
func WriteInvocations(w io.Writer, t *Trace) error {
	cw := csv.NewWriter(w)
	head := []string{"HashOwner", "HashApp", "HashFunction", "Trigger"}
	for _, m := range t.Minutes {
		head = append(head, strconv.Itoa(m))
	}
	cw.Write(head)
	for _, f := range t.Functions {
		rec := []string{f.Owner, f.App, f.Function, f.Trigger}
		for _, c := range f.Counts {
			rec = append(rec, strconv.Itoa(c))
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// WriteDurations writes t's durations file (functions without durations
// are left out).
func WriteDurations(w io.Writer, t *Trace) error {
	cw := csv.NewWriter(w)
	head := []string{"HashOwner", "HashApp", "HashFunction", "Average", "Count", "Minimum", "Maximum"}
	for _, p := range durationPercentiles {
		head = append(head, fmt.Sprintf("percentile_Average_%d", p))
	}
	cw.Write(head)
	for _, f := range t.Functions {
		d := f.Duration
		if d == nil {
			continue
		}
		rec := []string{f.Owner, f.App, f.Function, ftoa(d.AverageMs), strconv.Itoa(d.Count), ftoa(d.MinimumMs), ftoa(d.MaximumMs)}
		for _, p := range durationPercentiles {
			rec = append(rec, ftoa(d.Percentiles[p]))
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// WriteMemory writes t's memory file, one row per function with the column
// order of In-Vitro's samples (functions without memory are left out).
func WriteMemory(w io.Writer, t *Trace) error {
	cw := csv.NewWriter(w)
	head := []string{"HashFunction", "HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb"}
	for _, p := range memoryPercentiles {
		head = append(head, fmt.Sprintf("AverageAllocatedMb_pct%d", p))
	}
	cw.Write(head)
	for _, f := range t.Functions {
		m := f.Memory
		if m == nil {
			continue
		}
		rec := []string{f.Function, f.Owner, f.App, strconv.Itoa(m.SampleCount), ftoa(m.AverageMb)}
		for _, p := range memoryPercentiles {
			rec = append(rec, ftoa(m.Percentiles[p]))
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}
