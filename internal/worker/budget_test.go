package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
)

func openBudgetWorker(t *testing.T, mib int) *Worker {
	t.Helper()
	w, err := Open(context.Background(), Options{DataDir: t.TempDir(), MemoryBudgetMiB: mib})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// hog takes n MiB of the budget outside any instance, standing in for
// instances of other functions, or fails the test.
func hog(t *testing.T, w *Worker, mib uint64) *reservation {
	t.Helper()
	r, ok := w.budget.tryReserve(mib << 20)
	if !ok {
		t.Fatalf("cannot reserve %d MiB: %d of %d MiB used", mib, w.budget.used()>>20, w.budget.total>>20)
	}
	return r
}

// The budget bounds instances across functions: with no room and nothing
// to evict or wait for, a request gets 503 with a clear message; memory
// released by a closed instance admits the next; a request waits for a busy
// instance of another function to free memory; idle instances are evicted
// to make room.
func TestMemoryBudget(t *testing.T) {
	ctx := context.Background()
	w := openBudgetWorker(t, 256)
	deploy(t, w, "f", "examples/faulty", Config{MemoryMiB: 64, MaxInstances: 1, Timeout: api.Duration(2 * time.Second)})
	deploy(t, w, "g", "examples/faulty", Config{MemoryMiB: 64, MaxInstances: 1, Timeout: api.Duration(60 * time.Second)})
	if got := w.budget.used() >> 20; got < 128 {
		t.Fatalf("%d MiB charged after two deploys of 64 MiB, want at least 128", got)
	}
	for _, name := range []string{"f", "g"} {
		if err := w.Evict(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	a, b := hog(t, w, 192), hog(t, w, 64)
	defer a.release()

	// Full, no instance anywhere: refused at once, not queued, not booted.
	_, err := w.Invoke(ctx, "g", get("/ok"), InvokeOptions{})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "memory budget exhausted") {
		t.Fatalf("invoke with the budget full: %v, want ErrUnavailable saying the memory budget is exhausted", err)
	}
	if n := testutil.ToFloat64(w.metrics.budgetRefusals.WithLabelValues("g")); n != 1 {
		t.Fatalf("%v refusals counted, want 1", n)
	}
	if n := slots(t, w, "g"); n != 0 {
		t.Fatalf("the refused request left %d slots taken", n)
	}

	// 64 MiB released: the next request is admitted.
	b.release()
	invoke(t, w, "f", get("/ok"), InvokeOptions{})

	// f's only instance sleeps until its 2 s timeout; g's request finds the
	// budget full and nothing idle, waits, and is admitted when f's
	// instance is killed and its memory released.
	slept := make(chan error, 1)
	go func() { _, err := w.Invoke(ctx, "f", get("/sleep"), InvokeOptions{}); slept <- err }()
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(w.metrics.instances.WithLabelValues("f", "busy")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("f never became busy")
		}
		time.Sleep(10 * time.Millisecond)
	}
	within(t, "g waiting for memory", func() {
		if res := invoke(t, w, "g", get("/ok"), InvokeOptions{}); res.Response.Status != 200 {
			t.Errorf("g answered %d", res.Response.Status)
		}
	})
	if err := <-slept; !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("f /sleep: %v, want ErrTimeout", err)
	}

	// g's instance is idle and the budget full: f's next request evicts it.
	invoke(t, w, "f", get("/ok"), InvokeOptions{})
	if n := testutil.ToFloat64(w.metrics.budgetEvictions.WithLabelValues("g")); n != 1 {
		t.Fatalf("%v evictions of g, want 1", n)
	}
	if used, total := w.budget.used(), w.budget.total; used > total {
		t.Fatalf("%d bytes charged to a budget of %d", used, total)
	}
}

// Deploys whose instances cannot fit the budget are refused before any
// work, with ErrInvalid (400).
func TestMemoryBudgetRefusesDeploy(t *testing.T) {
	w := openBudgetWorker(t, 256)
	deploy(t, w, "pinned", "examples/hello", Config{MemoryMiB: 128, MinInstances: 1})
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"bigger than the budget", Config{MemoryMiB: 512}},
		{"min_instances do not fit", Config{MemoryMiB: 64, MinInstances: 5}},
		{"no room beside pinned", Config{MemoryMiB: 160}},
	} {
		_, err := w.Deploy(context.Background(), "big", []byte("not even wasm"), c.cfg)
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "memory budget") {
			t.Errorf("%s: %v, want ErrInvalid naming the memory budget", c.name, err)
		}
	}
	// Redeploying the pinned function itself does not count its old
	// floor: the old version's warm instance makes way for the new boot.
	deploy(t, w, "pinned", "examples/hello", Config{MemoryMiB: 256, MinInstances: 1})
	invoke(t, w, "pinned", get("/"), InvokeOptions{})
}

func TestDefaultMemoryBudget(t *testing.T) {
	b := DefaultMemoryBudget()
	if b == 0 || b > memTotal() {
		t.Fatalf("default budget %d, machine %d", b, memTotal())
	}
}
