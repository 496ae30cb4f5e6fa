package stats

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ten := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100 .. 1, unsorted
	}
	for _, tc := range []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"empty", nil, 50, 0},
		{"one sample", []float64{7}, 99, 7},
		{"median of ten is the lower middle", ten, 50, 5},
		{"p10 of ten", ten, 10, 1},
		{"p11 of ten rounds the rank up", ten, 11, 2},
		{"p90 of ten", ten, 90, 9},
		{"p99 of ten", ten, 99, 10},
		{"p100 is the maximum", ten, 100, 10},
		{"p0 is the minimum", ten, 0, 1},
		{"below 0 clamps", ten, -5, 1},
		{"above 100 clamps", ten, 150, 10},
		{"median of odd count", []float64{3, 1, 2}, 50, 2},
		{"median of two", []float64{2, 1}, 50, 1},
		{"whole rank is not rounded up", hundred, 7, 7},
		{"p99 of a hundred", hundred, 99, 99},
		{"fractional p", hundred, 99.5, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.xs, tc.p); got != tc.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
	if ten[0] != 5 {
		t.Error("Percentile sorted its input in place")
	}
}

func TestPercentileTypes(t *testing.T) {
	ms := time.Millisecond
	if got := Percentile([]time.Duration{5 * ms, 1 * ms, 3 * ms, 2 * ms}, 50); got != 2*ms {
		t.Errorf("median duration = %v, want 2ms", got)
	}
	if got := Percentile([]int64{40, 10, 30, 20}, 99); got != 40 {
		t.Errorf("p99 int64 = %v, want 40", got)
	}
	if got := PercentileSorted([]int64{1, 2, 3, 4}, 75); got != 3 {
		t.Errorf("PercentileSorted p75 = %v, want 3", got)
	}
}
