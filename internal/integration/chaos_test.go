package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/chaos"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// TestBenchChaos runs `thaw bench chaos` at a small scale: a real worker
// and MinIO under a mixed load while the object store stops and restarts,
// the pager child is killed, a cached chunk is corrupted, a snapshot
// image is truncated and slow clients connect. Every request is answered
// (ok or a clear error), the worker never restarts, every function that
// does not loop serves 200 again after every fault, and the looping guest
// only ever times out.
func TestBenchChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four functions and runs MinIO")
	}
	if os.Getenv("THAW_TEST_MINIO_SCRIPT") == "" {
		t.Skip("THAW_TEST_MINIO_SCRIPT not set: bench chaos runs its own MinIO through scripts/minio.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, thawBin, "bench", "chaos", "--duration", "60s", "--rate", "5", "--slow-conns", "300", "--json")
	cmd.Dir = testwasm.Root()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("thaw bench chaos: %v\n%s", err, stderr.String())
	}
	var rep chaos.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	t.Logf("%s", stderr.String())
	if rep.Sent == 0 {
		t.Fatal("no request sent")
	}
	if n := rep.Outcomes[chaos.OutcomeNeverAnswered]; n != 0 {
		t.Errorf("%d of %d requests never answered", n, rep.Sent)
	}
	if rep.WorkerRestarts != 0 {
		t.Errorf("the worker exited %d times", rep.WorkerRestarts)
	}
	if len(rep.Faults) != 8 {
		t.Errorf("%d faults injected, want 8: %+v", len(rep.Faults), rep.Faults)
	}
	for _, f := range rep.Faults {
		if f.RecoveryMs < 0 {
			t.Errorf("after %q (at %.0f s: %s) some function never answered 200 again", f.Name, f.AtS, f.Detail)
		}
	}
	for name, fs := range rep.Functions {
		if name == "faulty" {
			if fs.Outcomes["timeout"] != fs.Sent {
				t.Errorf("the looping guest: %v, want only timeouts", fs.Outcomes)
			}
			continue
		}
		if fs.Outcomes[chaos.OutcomeOK] == 0 {
			t.Errorf("%s: no request succeeded: %v", name, fs.Outcomes)
		}
	}
}
