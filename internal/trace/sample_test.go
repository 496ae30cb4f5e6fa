package trace

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// ladder returns a trace whose function i (0-based) is invoked i+1 times
// in every minute and runs for 10*(n-i) ms at the median, so the most
// popular function is the shortest.
func ladder(n, minutes int) *Trace {
	t := &Trace{}
	for m := range minutes {
		t.Minutes = append(t.Minutes, m+1)
	}
	for i := range n {
		f := &Function{Key: Key{Owner: "o", App: "a", Function: string(rune('A' + i))}, Trigger: "http", Counts: make([]int, minutes)}
		for m := range f.Counts {
			f.Counts[m] = i + 1
		}
		f.Duration = &Duration{Percentiles: map[int]float64{50: float64(10 * (n - i))}}
		t.Functions = append(t.Functions, f)
	}
	return t
}

func names(s *Sample) []string {
	var out []string
	for _, a := range s.Assignments {
		out = append(out, a.Function.Function)
	}
	return out
}

func TestSampleSelection(t *testing.T) {
	tr := ladder(20, 4)
	t.Run("by rank", func(t *testing.T) {
		s, err := tr.Sample(SampleOptions{Functions: 3, Targets: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(s); !slices.Equal(got, []string{"T", "S", "R"}) {
			t.Fatalf("picked %v, want the three most invoked", got)
		}
	})
	t.Run("stratified", func(t *testing.T) {
		opts := SampleOptions{Functions: 4, Selection: Stratified, Seed: 9, Targets: []string{"x"}}
		a, err := tr.Sample(opts)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := tr.Sample(opts)
		if !slices.Equal(names(a), names(b)) {
			t.Fatal("same seed, different sample")
		}
		// One function from each fifth... quarter of the ranking.
		for i, f := range a.Assignments {
			rank := 19 - int(f.Function.Function[0]-'A')
			if rank/5 != i {
				t.Fatalf("pick %d has popularity rank %d, outside stratum %d", i, rank, i)
			}
		}
		differs := false
		for seed := range uint64(20) {
			opts.Seed = seed
			c, _ := tr.Sample(opts)
			differs = differs || !slices.Equal(names(a), names(c))
		}
		if !differs {
			t.Fatal("no seed changed the stratified sample")
		}
	})
}

func TestSampleMapping(t *testing.T) {
	tr := ladder(6, 2)
	tr.Functions[0].Duration = nil // least popular function has no durations
	targets := []string{"short", "long"}
	tests := []struct {
		mapping Mapping
		want    map[string]string
	}{
		{RoundRobin, map[string]string{"F": "short", "E": "long", "D": "short", "C": "long", "B": "short", "A": "long"}},
		// B..F ranked by median duration: F(10) E(20) | D(30) C(40) B(50); A has none, round-robin.
		{ByDuration, map[string]string{"F": "short", "E": "short", "D": "short", "C": "long", "B": "long", "A": "short"}},
	}
	for _, tt := range tests {
		t.Run(map[Mapping]string{RoundRobin: "round robin", ByDuration: "by duration"}[tt.mapping], func(t *testing.T) {
			s, err := tr.Sample(SampleOptions{Targets: targets, Mapping: tt.mapping})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range s.Assignments {
				if want := tt.want[a.Function.Function]; a.Target != want {
					t.Errorf("%s -> %s, want %s", a.Function.Function, a.Target, want)
				}
			}
		})
	}
}

func TestSampleRateCapAndWindow(t *testing.T) {
	tr := Synthesize(30, 1)
	opts := SampleOptions{Targets: []string{"f"}, Minute: 2 * time.Second, MaxRate: 5, FirstMinute: 5, Minutes: 20, Seed: 3}
	s, err := tr.Sample(opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Minutes() != 20 || s.Duration() != 40*time.Second {
		t.Fatalf("minutes = %d duration = %v", s.Minutes(), s.Duration())
	}
	if s.Scale >= 1 {
		t.Fatalf("scale = %v, want the cap to bite", s.Scale)
	}
	per := make([]int, s.Minutes())
	for _, a := range s.Assignments {
		for m, c := range a.Counts {
			per[m] += c
		}
	}
	// Error diffusion may add up to one invocation per function in a minute.
	limit := int(opts.MaxRate*opts.Minute.Seconds()) + len(s.Assignments)
	for m, n := range per {
		if n > limit {
			t.Fatalf("minute %d has %d invocations, over the cap of %d", m, n, limit)
		}
	}
	// Each function's total is scaled to within one invocation.
	for _, a := range s.Assignments {
		orig := 0
		for _, c := range a.Function.Counts[5:25] {
			orig += c
		}
		got := 0
		for _, c := range a.Counts {
			got += c
		}
		if want := float64(orig) * s.Scale; float64(got) < want-1 || float64(got) > want+1e-6 {
			t.Fatalf("%s: %d invocations, want %.2f", a.Function.Function[:8], got, want)
		}
	}
	arr := s.Arrivals()
	if len(arr) != s.Total() {
		t.Fatalf("%d arrivals, want %d", len(arr), s.Total())
	}
	for i, a := range arr {
		if a.At < 0 || a.At >= s.Duration() || (i > 0 && a.At < arr[i-1].At) || a.Target != "f" {
			t.Fatalf("arrival %d = %+v", i, a)
		}
	}
	again, _ := tr.Sample(opts)
	if !slices.Equal(arr, again.Arrivals()) {
		t.Fatal("same options gave different arrivals")
	}
}

func TestSampleErrors(t *testing.T) {
	tr := Synthesize(10, 1)
	tests := []struct {
		name string
		opts SampleOptions
	}{
		{"no targets", SampleOptions{}},
		{"window past end", SampleOptions{Targets: []string{"f"}, FirstMinute: 10}},
		{"negative", SampleOptions{Targets: []string{"f"}, MaxRate: -1}},
		{"bad selection", SampleOptions{Targets: []string{"f"}, Selection: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tr.Sample(tt.opts); !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}
