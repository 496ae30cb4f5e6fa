package worker

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// openFaulty opens a worker with examples/faulty deployed as "faulty", at
// most max instances, and returns the function.
func openFaulty(t *testing.T, max int) (*Worker, *function) {
	t.Helper()
	w := openWorker(t)
	deploy(t, w, "faulty", "examples/faulty", Config{MaxInstances: max})
	f, err := w.lookup("faulty")
	if err != nil {
		t.Fatal(err)
	}
	return w, f
}

// Between requests the worker gives an instance its idle call; a request
// arriving meanwhile waits for that instance instead of starting another.
func TestIdleCallsBetweenRequests(t *testing.T) {
	w, f := openFaulty(t, 4)
	if err := w.Evict(context.Background(), "faulty"); err != nil {
		t.Fatal(err)
	}
	ok := func(outcome string) float64 {
		return testutil.ToFloat64(w.metrics.idle.WithLabelValues("faulty", outcome))
	}
	first := invoke(t, w, "faulty", get("/ok"), InvokeOptions{})
	if first.Timing.StartKind == "warm" {
		t.Fatal("the first request after an eviction found a warm instance")
	}
	for i := 2; i <= 5; i++ { // no wait in between: each finds the settling instance
		res := invoke(t, w, "faulty", get("/idles"), InvokeOptions{})
		if res.Timing.StartKind != "warm" {
			t.Fatalf("request %d started a %s instance while one was settling", i, res.Timing.StartKind)
		}
	}
	f.pool.awaitSettled()
	// Read the counts before the next request: the idle call after it
	// may finish before invoke returns.
	ran, skipped := ok("ok"), ok("skipped")
	res := invoke(t, w, "faulty", get("/idles"), InvokeOptions{})
	// The calls after requests 1-5 ran unless a request was already
	// waiting (skipped); the guest saw every one that ran.
	if got := strings.TrimSpace(string(res.Response.Body)); got == "0" || got != strconv.Itoa(int(ran)) {
		t.Fatalf("the guest counted %s idle calls, the worker %v", got, ran)
	}
	if ran+skipped != 5 {
		t.Fatalf("%v idle calls ran and %v were skipped after 5 requests", ran, skipped)
	}
	if _, total := f.pool.counts(); total != 1 {
		t.Fatalf("%d instances served sequential requests, want 1", total)
	}
}

// An instance whose idle call fails is closed; the failure reaches no
// request and the next one is served by a new instance.
func TestIdleFailureClosesInstance(t *testing.T) {
	w, f := openFaulty(t, 1)
	armed := invoke(t, w, "faulty", get("/idle-panic"), InvokeOptions{})
	if armed.Response.Status != 200 {
		t.Fatalf("arming answered %d", armed.Response.Status)
	}
	f.pool.awaitSettled()
	if n := testutil.ToFloat64(w.metrics.idle.WithLabelValues("faulty", "failed")); n != 1 {
		t.Fatalf("%v failed idle calls, want 1", n)
	}
	if idle, total := f.pool.counts(); idle != 0 || total != 0 {
		t.Fatalf("%d idle of %d instances after a failed idle call, want none", idle, total)
	}
	res := invoke(t, w, "faulty", get("/ok"), InvokeOptions{})
	if res.Response.Status != 200 || res.Timing.StartKind == "warm" {
		t.Fatalf("after the failure: %d from a %s instance", res.Response.Status, res.Timing.StartKind)
	}
}

// Under WithAfterResponse an instance settles only once the caller runs
// the work left for after its response, or once the worker's reaper finds
// that work overdue; either way exactly once.
func TestSettleAfterResponse(t *testing.T) {
	w, f := openFaulty(t, 1)
	invoke(t, w, "faulty", get("/ok"), InvokeOptions{})
	f.pool.awaitSettled()
	ran := func() float64 { return testutil.ToFloat64(w.metrics.idle.WithLabelValues("faulty", "ok")) }
	before := ran()
	// The reaper must not find the work overdue on a loaded machine.
	w.late.bound.Store(int64(time.Hour))

	ctx, after := WithAfterResponse(context.Background())
	if _, err := w.Invoke(ctx, "faulty", get("/ok"), InvokeOptions{}); err != nil {
		t.Fatal(err)
	}
	if idle, total := f.pool.counts(); idle != 0 || total != 1 {
		t.Fatalf("before Run: %d of %d instances idle, want the one that answered still settling", idle, total)
	}
	if got := ran(); got != before {
		t.Fatalf("an idle call ran before the work left for after the response was started")
	}
	after.Run()
	f.pool.awaitSettled()
	if idle, _ := f.pool.counts(); idle != 1 || ran() != before+1 {
		t.Fatalf("after Run: %d idle, %v idle calls; want 1 and %v", idle, ran(), before+1)
	}

	// Nobody runs it: the reaper does, past the bound.
	w.late.bound.Store(int64(time.Millisecond))
	ctx, after = WithAfterResponse(context.Background())
	if _, err := w.Invoke(ctx, "faulty", get("/ok"), InvokeOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if idle, _ := f.pool.counts(); idle == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an instance whose caller never ran the work left for after the response never settled")
		}
	}
	after.Run() // late: nothing left to start
	f.pool.awaitSettled()
	if got := ran(); got != before+2 {
		t.Fatalf("%v idle calls after two requests, want %v", got-before, 2)
	}
}
