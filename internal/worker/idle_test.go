package worker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Between requests the worker gives an instance its idle call; a request
// arriving meanwhile waits for that instance instead of starting another.
func TestIdleCallsBetweenRequests(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "faulty", "examples/faulty", Config{MaxInstances: 4})
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
	f, err := w.lookup("faulty")
	if err != nil {
		t.Fatal(err)
	}
	f.awaitSettled()
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
	f.mu.Lock()
	total := f.total
	f.mu.Unlock()
	if total != 1 {
		t.Fatalf("%d instances served sequential requests, want 1", total)
	}
}

// An instance whose idle call fails is closed; the failure reaches no
// request and the next one is served by a new instance.
func TestIdleFailureClosesInstance(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "faulty", "examples/faulty", Config{MaxInstances: 1})
	f, err := w.lookup("faulty")
	if err != nil {
		t.Fatal(err)
	}
	armed := invoke(t, w, "faulty", get("/idle-panic"), InvokeOptions{})
	if armed.Response.Status != 200 {
		t.Fatalf("arming answered %d", armed.Response.Status)
	}
	f.awaitSettled()
	if n := testutil.ToFloat64(w.metrics.idle.WithLabelValues("faulty", "failed")); n != 1 {
		t.Fatalf("%v failed idle calls, want 1", n)
	}
	f.mu.Lock()
	idle, total := len(f.idle), f.total
	f.mu.Unlock()
	if idle != 0 || total != 0 {
		t.Fatalf("%d idle of %d instances after a failed idle call, want none", idle, total)
	}
	res := invoke(t, w, "faulty", get("/ok"), InvokeOptions{})
	if res.Response.Status != 200 || res.Timing.StartKind == "warm" {
		t.Fatalf("after the failure: %d from a %s instance", res.Response.Status, res.Timing.StartKind)
	}
}

// A settling instance holds back one request, not all: the first request
// waits for it, a second starts another instance at once.
func TestAcquireWaitsForOneSettlingInstance(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "faulty", "examples/faulty", Config{MaxInstances: 4})
	if err := w.Evict(context.Background(), "faulty"); err != nil {
		t.Fatal(err)
	}
	f, err := w.lookup("faulty")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.total++ // an instance that settles until released below
	f.settling++
	f.mu.Unlock()

	first := make(chan error, 1)
	go func() {
		inst, err := f.acquire(context.Background(), false)
		if err == nil && inst != nil {
			err = errors.New("got an instance, want a reserved slot")
		}
		first <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		waiting := f.waiting
		f.mu.Unlock()
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first request did not wait for the settling instance")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if inst, err := f.acquire(ctx, false); err != nil || inst != nil {
		t.Fatalf("second request: %v, %v; want a slot for a new instance at once", inst, err)
	}
	select {
	case err := <-first:
		t.Fatalf("the first request stopped waiting before the instance settled (%v)", err)
	default:
	}
	f.releaseSettled(nil, true) // the settling instance goes away
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	f.release(nil)
	f.release(nil)
	f.mu.Lock()
	total, settling := f.total, f.settling
	f.mu.Unlock()
	if total != 0 || settling != 0 {
		t.Fatalf("%d instances, %d settling after releasing every slot", total, settling)
	}
}
