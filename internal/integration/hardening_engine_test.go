package integration

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
)

// TestSleepingGuestTimesOut: a guest sleeping 2^63 ns in the host (WASI
// poll_oneoff, reached by Go's time.Sleep) is answered 504 at the
// function's timeout, twice in a row on a function with one instance slot,
// and the function keeps serving: the sleep wedges no slot.
func TestSleepingGuestTimesOut(t *testing.T) {
	p := shared(t)
	deploy(t, p, "sleepy", "examples/faulty", api.Config{MemoryMiB: 64, Timeout: api.Duration(2 * time.Second), MaxInstances: 1})
	for i := range 2 {
		t0 := time.Now()
		status, hdr, body := raw(t, "GET", p.URL+"/fn/sleepy/sleep", token, nil, nil)
		if status != 504 || hdr.Get(api.HeaderError) != "timeout" {
			t.Fatalf("/sleep #%d: %d %s %s, want 504 timeout", i, status, hdr.Get(api.HeaderError), body)
		}
		// Generous: the point is that it answers, not how fast.
		if d := time.Since(t0); d > 60*time.Second {
			t.Fatalf("/sleep #%d answered after %v", i, d)
		}
		if msg := errorMessage(t, body); !strings.Contains(msg, "timeout") {
			t.Errorf("error %q does not say timeout", msg)
		}
	}
	if res := invoke(t, p, "sleepy", &api.InvokeRequest{Path: "/ok"}); string(res.Body) != "ok\n" {
		t.Fatalf("after /sleep: %q", res.Body)
	}
}

// TestMemoryBudgetServe runs `thaw serve --memory-budget-mib 128` and
// checks that deploys which cannot fit are refused with 400, that a request
// finding the budget held by busy instances waits and then gets 503 with a
// clear message instead of overcommitting memory, that /metrics shows the
// budget and its use, and that the function is admitted again once the
// memory is released.
func TestMemoryBudgetServe(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startServe(t, dir, token, "--memory-budget-mib", "128")
	defer p.Stop()
	wasm, _ := module(t, "examples/faulty")
	c := client(p, token)
	for _, cfg := range []api.Config{{MemoryMiB: 256}, {MemoryMiB: 64, MinInstances: 3}} {
		_, err := c.Deploy(ctx, "big", wasm, cfg)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Error(), "memory budget") {
			t.Fatalf("deploy memory_mib=%d min_instances=%d: %v, want 400 naming the memory budget", cfg.MemoryMiB, cfg.MinInstances, err)
		}
	}
	// q is deployed first; its idle instance is evicted when s needs room.
	deploy(t, p, "q", "examples/faulty", api.Config{MemoryMiB: 64, Timeout: api.Duration(time.Second)})
	deploy(t, p, "s", "examples/faulty", api.Config{MemoryMiB: 64, Timeout: api.Duration(20 * time.Second), MaxInstances: 2})

	// Two sleepers hold the whole budget for 20 s.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, body := raw(t, "GET", p.URL+"/fn/s/sleep", token, nil, nil)
			if status != 504 {
				t.Errorf("s /sleep: %d %s, want 504", status, body)
			}
		}()
	}
	metric := func(name string) string {
		_, _, body := raw(t, "GET", p.URL+"/metrics", token, nil, nil)
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, name+" ") {
				return strings.TrimPrefix(line, name+" ")
			}
		}
		return ""
	}
	busy := `thaw_instances{function="s",state="busy"}`
	deadline := time.Now().Add(2 * time.Minute)
	for metric(busy) != "2" {
		if time.Now().After(deadline) {
			t.Fatalf("s never had two busy instances; %s = %q", busy, metric(busy))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := metric("thaw_memory_budget_bytes"); got != "1.34217728e+08" {
		t.Errorf("thaw_memory_budget_bytes = %q, want 128 MiB", got)
	}
	if got := metric("thaw_memory_reserved_bytes"); got != "1.34217728e+08" {
		t.Errorf("thaw_memory_reserved_bytes = %q with two 64 MiB instances busy, want 128 MiB", got)
	}

	// q finds no room: it waits (up to its 1 s timeout) and gets 503.
	status, hdr, body := raw(t, "GET", p.URL+"/fn/q/ok", token, nil, nil)
	if status != 503 || hdr.Get(api.HeaderError) != "unavailable" || !strings.Contains(errorMessage(t, body), "memory budget exhausted") {
		t.Fatalf("q with the budget full: %d %s %s, want 503 saying the memory budget is exhausted", status, hdr.Get(api.HeaderError), body)
	}
	wg.Wait() // the sleepers are killed at their timeout and their memory released
	if res := invoke(t, p, "q", &api.InvokeRequest{Path: "/ok"}); string(res.Body) != "ok\n" {
		t.Fatalf("q after the release: %q", res.Body)
	}
	if !strings.Contains(p.Log(), "memory budget") {
		t.Error("the server did not log its memory budget")
	}
}
