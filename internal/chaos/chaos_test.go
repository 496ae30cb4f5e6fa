package chaos

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/snapshot"
)

// A fault's recovery ends when every probe function has answered 200 to
// a request sent after it; requests sent before it, failures and
// non-probe functions do not count, and a probe that never recovers
// leaves the fault unrecovered.
func TestSummariseRecovery(t *testing.T) {
	r := &run{targets: []target{{name: "a", probe: true}, {name: "b", probe: true}, {name: "loop"}}}
	s := time.Second
	recs := []record{
		{fn: "a", sent: 1 * s, latency: s / 10, outcome: OutcomeOK},                // before the fault
		{fn: "a", sent: 11 * s, latency: s / 10, outcome: "unavailable"},           // failed
		{fn: "loop", sent: 11 * s, latency: 2 * s, outcome: OutcomeOK},             // not a probe
		{fn: "a", sent: 12 * s, latency: s / 10, outcome: OutcomeOK},               // a recovers
		{fn: "b", sent: 13 * s, latency: s / 2, outcome: OutcomeOK, start: "cold"}, // b recovers: done at 13.5 s
		{fn: "b", sent: 31 * s, latency: s, outcome: OutcomeNeverAnswered},
	}
	rep := &Report{Outcomes: map[string]int{}, Functions: map[string]FunctionStats{},
		Faults: []Fault{{Name: "x", AtS: 10}, {Name: "y", AtS: 30}}}
	r.summarise(rep, recs, time.Time{})
	if got := rep.Faults[0].RecoveryMs; got != 3500 {
		t.Errorf("recovery after x = %v ms, want 3500", got)
	}
	if got := rep.Faults[1].RecoveryMs; got != -1 {
		t.Errorf("recovery after y = %v ms, want -1 (never)", got)
	}
	if rep.Sent != 6 || rep.Outcomes[OutcomeOK] != 4 || rep.Outcomes[OutcomeNeverAnswered] != 1 {
		t.Errorf("counts: sent %d, outcomes %v", rep.Sent, rep.Outcomes)
	}
	if b := rep.Functions["b"]; b.Sent != 2 || b.Starts["cold"] != 1 {
		t.Errorf("function b: %+v", b)
	}
}

func TestTruncateAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "snap1", snapshot.ImageFile)
	if err := os.MkdirAll(filepath.Dir(img), 0o700); err != nil {
		t.Fatal(err)
	}
	orig := make([]byte, 8192)
	if err := os.WriteFile(img, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := truncateImages(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(img); err != nil || fi.Size() != 1024 {
		t.Fatalf("after truncation: %v, %v", fi, err)
	}
	if _, err := corruptLargest(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) == string(orig[:1024]) {
		t.Fatal("corruptLargest changed nothing")
	}
	if _, err := corruptLargest(t.TempDir()); err == nil {
		t.Fatal("corruptLargest on an empty directory: no error")
	}
}
