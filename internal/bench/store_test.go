package bench

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// TestSnapshotFunctionAsDeploy checks that `thaw bench store` snapshots a
// function as the worker's deploy does: after the guest's before-snapshot
// hook, in which the Go SDK collects garbage. An instance restored from
// the benchmark's snapshot has then run exactly one more GC cycle than a
// cold boot at its first request (worker's TestBeforeSnapshotHook).
func TestSnapshotFunctionAsDeploy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := engine.Open(ctx, "", engine.Config{CacheDir: filepath.Join(dir, "compile")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	gcs := &abi.Request{Method: http.MethodGet, Path: "/gcs", Header: http.Header{}}
	fn := Function{Name: "faulty", Wasm: testwasm.Build(t, "examples/faulty"), MemoryMiB: 64, Request: *gcs}
	pr, err := snapshotFunction(ctx, e, nil, fn, filepath.Join(dir, "local"), false)
	if err != nil {
		t.Fatal(err)
	}
	count := func(inst engine.Instance) int {
		t.Helper()
		defer inst.Close(ctx)
		res, err := inst.Invoke(ctx, cloneReq(gcs))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if _, err := fmt.Sscan(string(res.Body), &n); err != nil {
			t.Fatalf("/gcs: %q: %v", res.Body, err)
		}
		return n
	}
	m, err := (&restore.Restorer{}).Prepare(ctx, restore.Eager, restore.Files(pr.snap), pr.cfg.MemoryLimit, false)
	if err != nil {
		t.Fatal(err)
	}
	ri, err := pr.mod.Restore(ctx, pr.cfg, &pr.snap.Meta.State, m.Region)
	if err != nil {
		t.Fatal(err)
	}
	restored := count(ri)
	bi, _, err := pr.mod.Boot(ctx, pr.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if booted := count(bi); restored != booted+1 {
		t.Errorf("restored instance has run %d GC cycles, a cold boot %d: want one more, the before-snapshot hook's", restored, booted)
	}
}
