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
	"github.com/thaw-run/thaw/internal/testwasm"
)

// within runs f and fails the test if it has not returned after 30 s: a
// guest sleeping 2^63 ns under a 1 s deadline must not hold the caller.
// The bound is slack for a slow machine, not a performance check.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still blocked 30 s after a 1 s deadline", what)
	}
}

// slots reports a function's live instances (idle, busy or starting).
func slots(t *testing.T, w *Worker, name string) int {
	f, err := w.lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	_, total := f.pool.counts()
	return total
}

// A request whose guest sleeps in the host is answered with a timeout at
// the function's deadline, and the function's only slot serves the next.
func TestSleepingHandlerReleasesSlot(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "faulty", "examples/faulty", Config{MaxInstances: 1, Timeout: api.Duration(time.Second)})
	var err error
	within(t, "/sleep", func() { _, err = w.Invoke(context.Background(), "faulty", get("/sleep"), InvokeOptions{}) })
	if !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("/sleep: %v, want ErrTimeout", err)
	}
	within(t, "/ok", func() {
		if res := invoke(t, w, "faulty", get("/ok"), InvokeOptions{}); res.Response.Status != 200 {
			t.Errorf("/ok after /sleep answered %d", res.Response.Status)
		}
	})
}

// An idle call that sleeps is stopped at the deadline and its instance
// closed; the slot is free again.
func TestSleepingIdleCallReleasesSlot(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "faulty", "examples/faulty", Config{MaxInstances: 1, Timeout: api.Duration(time.Second)})
	invoke(t, w, "faulty", get("/sleep-idle"), InvokeOptions{})
	f, _ := w.lookup("faulty")
	within(t, "idle call", f.pool.awaitSettled)
	if n := testutil.ToFloat64(w.metrics.idle.WithLabelValues("faulty", "failed")); n != 1 {
		t.Fatalf("%v failed idle calls, want 1", n)
	}
	if n := slots(t, w, "faulty"); n != 0 {
		t.Fatalf("%d instances after the idle call was stopped, want 0", n)
	}
	within(t, "/ok", func() { invoke(t, w, "faulty", get("/ok"), InvokeOptions{}) })
}

// A restore hook that sleeps is stopped at the deadline: the restore fails
// and the request is served by a cold boot.
func TestSleepingRestoreHookFallsBackCold(t *testing.T) {
	w := openWorker(t)
	// fixed:1 snapshots the instance after its first request, the one that
	// arms the sleep, and restores that snapshot afterwards.
	deploy(t, w, "faulty", "examples/faulty", Config{MaxInstances: 1, Timeout: api.Duration(time.Second),
		Policy: "fixed:1", RestoreMode: api.ModeEager})
	invoke(t, w, "faulty", get("/sleep-restore"), InvokeOptions{})
	w.WaitCheckpoints("faulty")
	if err := w.Evict(context.Background(), "faulty"); err != nil {
		t.Fatal(err)
	}
	within(t, "restore", func() {
		res := invoke(t, w, "faulty", get("/ok"), InvokeOptions{})
		if res.Timing.StartKind != "cold" || !strings.Contains(res.Timing.Fallback, "timeout") {
			t.Errorf("served by a %s start (fallback %q), want a cold boot after the restore hook timed out", res.Timing.StartKind, res.Timing.Fallback)
		}
	})
	if n := slots(t, w, "faulty"); n != 1 {
		t.Fatalf("%d instances, want the cold-booted one", n)
	}
}

// A module whose initialisation sleeps fails to deploy with a timeout at
// its init_timeout, and the worker goes on deploying and serving.
func TestSleepingInitFailsDeploy(t *testing.T) {
	w := openWorker(t)
	var err error
	within(t, "deploy", func() {
		_, err = w.Deploy(context.Background(), "sleepy", testwasm.Build(t, "internal/engine/testdata/sleepinit"),
			Config{InitTimeout: api.Duration(time.Second)})
	})
	if !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("deploy: %v, want ErrTimeout", err)
	}
	if _, err := w.Get("sleepy"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the failed deploy was registered: %v", err)
	}
	deploy(t, w, "hello", "examples/hello", Config{})
	invoke(t, w, "hello", get("/"), InvokeOptions{})
}
