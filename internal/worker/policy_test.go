package worker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// A fixed:3 policy snapshots the live instance after its third request;
// after an eviction the next instance restores that snapshot and answers
// request 4 exactly as an instance that was never evicted does.
func TestCheckpointLiveInstance(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	deploy(t, w, "evicted", "examples/warmup/templates", Config{MaxInstances: 1, Policy: "fixed:3"})
	deploy(t, w, "steady", "examples/warmup/templates", Config{MaxInstances: 1, Policy: "init", RestoreMode: api.ModeCold})
	if err := w.Evict(ctx, "evicted"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		res := invoke(t, w, "evicted", get("/"), InvokeOptions{})
		if res.Timing.Request != i {
			t.Fatalf("request %d numbered %d", i, res.Timing.Request)
		}
		invoke(t, w, "steady", get("/"), InvokeOptions{})
	}
	w.WaitCheckpoints("evicted")
	if info, _ := w.Get("evicted"); info.PoolSnapshots != 1 {
		t.Fatalf("pool has %d checkpoint snapshots, want 1", info.PoolSnapshots)
	}
	if err := w.Evict(ctx, "evicted"); err != nil {
		t.Fatal(err)
	}
	got := invoke(t, w, "evicted", get("/"), InvokeOptions{})
	want := invoke(t, w, "steady", get("/"), InvokeOptions{})
	if got.Timing.StartKind != "restore" || got.Timing.SnapshotRequest != 3 || got.Timing.Request != 4 {
		t.Fatalf("after eviction: %+v, want a restore of the request-3 snapshot serving request 4", got.Timing)
	}
	if !bytes.Equal(got.Response.Body, want.Response.Body) {
		t.Fatalf("restored checkpoint answered request 4 differently:\n%.200s\nvs\n%.200s", got.Response.Body, want.Response.Body)
	}

	// The pool and the policy state survive a restart.
	w.Close(ctx)
	if _, err := os.Stat(filepath.Join(dir, "functions", "evicted", policyFile)); err != nil {
		t.Fatalf("policy state not persisted: %v", err)
	}
	w2, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(ctx)
	res := invoke(t, w2, "evicted", get("/"), InvokeOptions{})
	if res.Timing.SnapshotRequest != 3 {
		t.Fatalf("after restart restored snapshot of request %d, want 3", res.Timing.SnapshotRequest)
	}
}

// The pool never holds more than pool_size snapshots on disk.
func TestPoolBound(t *testing.T) {
	ctx := context.Background()
	w := openWorker(t)
	deploy(t, w, "flat", "examples/warmup/flat", Config{MaxInstances: 1, Policy: "pronghorn:window=4", PoolSize: 3})
	for i := 0; i < 40; i++ {
		invoke(t, w, "flat", get("/"), InvokeOptions{})
		if i%2 == 1 {
			w.WaitCheckpoints("flat")
			if err := w.Evict(ctx, "flat"); err != nil {
				t.Fatal(err)
			}
		}
		entries, _ := os.ReadDir(w.snapDir("flat"))
		w.WaitCheckpoints("flat")
		if n := len(entries); n > 3+1 { // +1: a snapshot being written
			t.Fatalf("after request %d the pool holds %d snapshots on disk, capacity 3", i, n)
		}
	}
	w.WaitCheckpoints("flat")
	entries, _ := os.ReadDir(w.snapDir("flat"))
	if len(entries) > 3 {
		t.Fatalf("pool holds %d snapshots, capacity 3", len(entries))
	}
	if info, _ := w.Get("flat"); info.PoolSnapshots == 0 {
		t.Fatal("pronghorn never took a snapshot")
	}
}

// A checkpoint of a restored instance inherits the working set of the
// snapshot its instance was restored from, plus the pages that instance
// faulted on, so its first restore prefetches at once instead of recording
// lazily.
func TestCheckpointInheritsWorkingSet(t *testing.T) {
	ctx := context.Background()
	w := openWorker(t)
	deploy(t, w, "heavy", "examples/initheavy", Config{MaxInstances: 1, Policy: "fixed:2"})
	if err := w.Evict(ctx, "heavy"); err != nil {
		t.Fatal(err)
	}
	// Request 1 records the initialisation snapshot's working set; request
	// 2 is checkpointed.
	invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{})
	invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{})
	w.WaitCheckpoints("heavy")
	f, err := w.lookup("heavy")
	if err != nil {
		t.Fatal(err)
	}
	_, snaps := f.ckpt.candidates()
	if len(snaps) != 2 {
		t.Fatalf("pool has %d snapshots, want the init one and the checkpoint", len(snaps))
	}
	parentWS, err := snaps[0].WorkingSet()
	if err != nil {
		t.Fatalf("init snapshot working set: %v", err)
	}
	childWS, err := snaps[1].WorkingSet()
	if err != nil {
		t.Fatalf("checkpoint working set: %v", err)
	}
	// The child's working set is the parent's plus what the instance
	// faulted on outside it (here: it restored lazily to record, so every
	// page its two requests touched).
	inChild := map[int]bool{}
	for _, r := range childWS.Runs {
		for p := r.Start; p < r.Start+r.Count; p++ {
			inChild[p] = true
		}
	}
	for _, r := range parentWS.Runs {
		for p := r.Start; p < r.Start+r.Count; p++ {
			if !inChild[p] {
				t.Fatalf("checkpoint working set (%d pages) lacks the parent's page %d", childWS.Pages, p)
			}
		}
	}
	if err := w.Evict(ctx, "heavy"); err != nil {
		t.Fatal(err)
	}
	res := invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{})
	if res.Timing.SnapshotRequest != 2 || res.Timing.Restore == nil {
		t.Fatalf("did not restore the checkpoint: %+v", res.Timing)
	}
	if st := res.Timing.Restore; st.Recording || st.WSPages != childWS.Pages {
		t.Errorf("checkpoint's first restore: recording %v, prefetched %d pages, want no recording and %d", st.Recording, st.WSPages, childWS.Pages)
	}
}

// A checkpoint after a request number the pool already holds a snapshot
// after is skipped: an instance started from the initialisation snapshot
// (an explicit mode) reaches fixed:2's checkpoint request again, and no
// second snapshot is written.
func TestCheckpointSkipsDuplicateRequest(t *testing.T) {
	ctx := context.Background()
	w := openWorker(t)
	deploy(t, w, "hello", "examples/hello", Config{MaxInstances: 1, Policy: "fixed:2"})
	checkpoints := func() float64 { return testutil.ToFloat64(w.metrics.checkpoints.WithLabelValues("hello")) }
	for i := 1; i <= 2; i++ {
		invoke(t, w, "hello", get("/?name=x"), InvokeOptions{})
	}
	w.WaitCheckpoints("hello")
	if n := checkpoints(); n != 1 {
		t.Fatalf("%v checkpoints after request 2, want 1", n)
	}
	if err := w.Evict(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	first := invoke(t, w, "hello", get("/?name=x"), InvokeOptions{Mode: restore.Bulk}) // from the init snapshot
	second := invoke(t, w, "hello", get("/?name=x"), InvokeOptions{Mode: restore.Warm})
	if first.Timing.Request != 1 || second.Timing.Request != 2 || second.Timing.StartKind != "warm" {
		t.Fatalf("requests numbered %d and %d (second start %s), want 1 and 2 on one instance", first.Timing.Request, second.Timing.Request, second.Timing.StartKind)
	}
	w.WaitCheckpoints("hello")
	if n := checkpoints(); n != 1 {
		t.Fatalf("%v checkpoints, want 1: the duplicate after request 2 was written", n)
	}
}

// A checkpoint copies an instance's memory without mapping the pages the
// instance never touched, and the copy equals its whole memory: pages it
// touched from memory, the others from the snapshot it was restored from,
// or zeros for a booted instance.
func TestCaptureMemoryLeavesUntouchedPages(t *testing.T) {
	ctx := context.Background()
	w := openWorker(t)
	deploy(t, w, "heavy", "examples/initheavy", Config{MaxInstances: 1, Policy: "init"})
	invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{Mode: restore.Reap}) // records the working set
	f, err := w.lookup("heavy")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []restore.Mode{restore.Cold, restore.Eager, restore.Mmap, restore.Lazy, restore.Bulk} {
		t.Run(string(mode), func(t *testing.T) {
			if err := w.Evict(ctx, "heavy"); err != nil {
				t.Fatal(err)
			}
			res := invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{Mode: mode})
			if res.Timing.Mode != mode {
				t.Fatalf("started %s, want %s", res.Timing.Mode, mode)
			}
			inst := lastIdle(t, f)
			_, mem := inst.Capture()
			mapped := func() int {
				present, err := inst.Region().Present(uint64(len(mem)))
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, p := range present {
					if p {
						n++
					}
				}
				return n
			}
			before := mapped()
			buf := make([]byte, len(mem))
			if err := captureMemory(inst, buf, mem); err != nil {
				t.Fatal(err)
			}
			if after := mapped(); after != before {
				t.Errorf("capture mapped %d more pages (%d before)", after-before, before)
			}
			if mode != restore.Eager && before >= len(mem)/snapshot.PageSize {
				t.Errorf("all %d pages were mapped before the capture: the test shows nothing", before)
			}
			if !bytes.Equal(buf, mem) { // reading mem maps every page
				for p := 0; p < len(mem)/snapshot.PageSize; p++ {
					if lo := p * snapshot.PageSize; !bytes.Equal(buf[lo:lo+snapshot.PageSize], mem[lo:lo+snapshot.PageSize]) {
						t.Fatalf("captured page %d differs from the instance's", p)
					}
				}
			}
		})
	}
}
