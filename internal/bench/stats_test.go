package bench

import "testing"

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, c := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {10, 1}, {100, 10}, {0, 1}} {
		if got := Percentile(xs, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty input")
	}
	if xs[0] != 5 {
		t.Error("Percentile sorted its input in place")
	}
}

func TestRatios(t *testing.T) {
	r := ratios(map[string]float64{"lazy": 100, "reap": 25, "bulk": 20, "cold": 2000, "physical+warm": 16})
	for k, want := range map[string]float64{"lazy/reap": 4, "reap/bulk": 1.25, "cold/bulk": 100, "bulk/physical+warm": 1.25} {
		if got := r[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if _, ok := r["mmap/bulk"]; ok {
		t.Error("ratio reported for a mode that was not measured")
	}
}
