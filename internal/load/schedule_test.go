package load

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/trace"
)

func gaps(a []Arrival) []float64 {
	var out []float64
	for i := 1; i < len(a); i++ {
		out = append(out, float64(a[i].At-a[i-1].At))
	}
	return out
}

func meanCV(xs []float64) (mean, cv float64) {
	var sum, sq float64
	for _, x := range xs {
		sum += x
	}
	mean = sum / float64(len(xs))
	for _, x := range xs {
		sq += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sq/float64(len(xs))) / mean
}

func sorted(a []Arrival) bool {
	return slices.IsSortedFunc(a, func(x, y Arrival) int { return int(x.At - y.At) })
}

func TestConstant(t *testing.T) {
	a, err := Constant(50, 2*time.Second, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 100 {
		t.Fatalf("%d arrivals, want 100", len(a))
	}
	for i, x := range a {
		if want := time.Duration(i) * 20 * time.Millisecond; x.At != want {
			t.Fatalf("arrival %d at %v, want %v", i, x.At, want)
		}
		if want := []string{"a", "b"}[i%2]; x.Function != want {
			t.Fatalf("arrival %d to %s, want %s", i, x.Function, want)
		}
	}
}

// TestPoisson checks the process statistically over many arrivals: the
// count and mean gap match the rate, gaps have a coefficient of variation
// of 1, and functions are picked evenly.
func TestPoisson(t *testing.T) {
	const rate, d = 1000.0, 100 * time.Second // 100k arrivals expected
	fns := []string{"a", "b", "c", "d"}
	a, err := Poisson(rate, d, fns, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := rate * d.Seconds()
	// Poisson count: sd = sqrt(100000) ≈ 316; allow 5 sd.
	if n := float64(len(a)); math.Abs(n-want) > 5*math.Sqrt(want) {
		t.Fatalf("%v arrivals, want %v±%v", n, want, 5*math.Sqrt(want))
	}
	if !sorted(a) || a[len(a)-1].At >= d {
		t.Fatal("arrivals unsorted or past the duration")
	}
	mean, cv := meanCV(gaps(a))
	if math.Abs(mean/float64(time.Millisecond)-1) > 0.02 || math.Abs(cv-1) > 0.02 {
		t.Fatalf("mean gap %.4f ms, cv %.3f; want 1 ms and 1", mean/float64(time.Millisecond), cv)
	}
	per := map[string]int{}
	for _, x := range a {
		per[x.Function]++
	}
	for _, f := range fns {
		if share := float64(per[f]) / float64(len(a)); math.Abs(share-0.25) > 0.01 {
			t.Fatalf("function %s got %.3f of arrivals, want 0.25", f, share)
		}
	}
	b, _ := Poisson(rate, d, fns, 1)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different schedule")
	}
	c, _ := Poisson(rate, d, fns, 2)
	if slices.Equal(a[:100], c[:100]) {
		t.Fatal("different seeds, same schedule")
	}
}

func TestBursts(t *testing.T) {
	b := Burst{On: time.Second, Off: 3 * time.Second, OnRate: 2000, OffRate: 0}
	a, err := Bursts(b, 40*time.Second, []string{"f"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !sorted(a) {
		t.Fatal("unsorted")
	}
	for _, x := range a {
		if x.At%(4*time.Second) >= time.Second {
			t.Fatalf("arrival at %v falls in an off phase", x.At)
		}
	}
	want := 10 * 2000.0 // ten on phases
	if n := float64(len(a)); math.Abs(n-want) > 5*math.Sqrt(want) {
		t.Fatalf("%v arrivals, want %v", n, want)
	}
	// With a background rate, off phases get their share too.
	b.OffRate = 100
	a, _ = Bursts(b, 40*time.Second, []string{"f"}, 5)
	off := 0
	for _, x := range a {
		if x.At%(4*time.Second) >= time.Second {
			off++
		}
	}
	if want := 10 * 3 * 100.0; math.Abs(float64(off)-want) > 5*math.Sqrt(want) {
		t.Fatalf("%d off-phase arrivals, want %v", off, want)
	}
}

func TestScheduleErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func() error
	}{
		{"zero rate", func() error { _, err := Constant(0, time.Second, []string{"f"}); return err }},
		{"no functions", func() error { _, err := Poisson(1, time.Second, nil, 0); return err }},
		{"zero duration", func() error { _, err := Poisson(1, 0, []string{"f"}, 0); return err }},
		{"no on phase", func() error { _, err := Bursts(Burst{OnRate: 1}, time.Second, []string{"f"}, 0); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestFromTrace(t *testing.T) {
	tr, err := trace.Load(trace.DirFiles("../trace/testdata/synthetic"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := tr.Sample(trace.SampleOptions{Functions: 4, Targets: []string{"hello", "sleepy"}, Minute: time.Second, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := FromTrace(s)
	if len(a) != s.Total() || !sorted(a) {
		t.Fatalf("%d arrivals (sorted %v), want %d", len(a), sorted(a), s.Total())
	}
	per := make([]int, s.Minutes())
	for _, x := range a {
		per[x.At/time.Second]++
	}
	for m := range per {
		want := 0
		for _, as := range s.Assignments {
			want += as.Counts[m]
		}
		if per[m] != want {
			t.Fatalf("second %d has %d arrivals, the trace minute has %d", m, per[m], want)
		}
	}
}
