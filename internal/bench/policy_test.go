package bench

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestPolicyPlots(t *testing.T) {
	rep := &PolicyReport{Results: []PolicyResult{
		{Function: "f", Policy: "fixed:1", EvictEvery: 1, Latencies: []float64{10, 9, 11, 10}, Snapshots: []int{0, 1, 1, 1}},
		{Function: "f", Policy: "pronghorn", EvictEvery: 1, Latencies: []float64{10, 8, 5, 4}, Snapshots: []int{-1, 0, 2, 3}},
	}}
	dir := t.TempDir()
	files, err := rep.WritePlots(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("wrote %v, want a latency and a snapshot plot", files)
	}
	for _, name := range files {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		f.Close()
		if _, err := os.Stat(filepath.Join(dir, name[:len(name)-4]+".svg")); err != nil {
			t.Errorf("no SVG beside %s", name)
		}
	}
}
