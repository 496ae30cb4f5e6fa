package bench

import "testing"

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
