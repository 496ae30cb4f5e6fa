package bench

import "testing"

func TestRatios(t *testing.T) {
	r := ratios(map[string]float64{"lazy": 100, "reap": 25, "bulk": 20, "cold": 2000, "physical+warm": 16, "physical+first": 10})
	for k, want := range map[string]float64{"lazy/reap": 4, "reap/bulk": 1.25, "cold/bulk": 100, "bulk/physical+warm": 1.25, "bulk/physical+first": 2} {
		if got := r[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if _, ok := r["mmap/bulk"]; ok {
		t.Error("ratio reported for a mode that was not measured")
	}
}

// The floor with a fresh instance's first call takes eager's exec from the
// same run, and is absent without an eager row.
func TestPhysicalAddFirst(t *testing.T) {
	p := Physical{ReadP50ms: 0.25, WarmP50ms: 0.0625}
	p.addFirst([]RestoreResult{{Mode: "bulk", ExecP50: 0.5}})
	if p.FirstP50ms != 0 || p.FirstTotalP50ms != 0 {
		t.Fatalf("without eager: %+v", p)
	}
	p.addFirst([]RestoreResult{{Mode: "bulk", ExecP50: 0.5}, {Mode: "eager", ExecP50: 0.125}})
	if p.FirstP50ms != 0.125 || p.FirstTotalP50ms != 0.375 {
		t.Fatalf("with eager exec 0.125 after a 0.25 read: %+v", p)
	}
}
