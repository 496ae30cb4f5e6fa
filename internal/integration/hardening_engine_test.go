package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/server"
	"github.com/thaw-run/thaw/internal/worker"
)

// TestSleepingGuestTimesOut: a guest sleeping 2^63 ns in the host (WASI
// poll_oneoff, reached by Go's time.Sleep) is answered 504 at the
// function's timeout, twice in a row on a function with one instance slot,
// and the function keeps serving: the sleep wedges no slot.
func TestSleepingGuestTimesOut(t *testing.T) {
	p := shared(t)
	deploy(t, p, "sleepy", "examples/faulty", worker.Config{MemoryMiB: 64, Timeout: worker.Duration(2 * time.Second), MaxInstances: 1})
	for i := range 2 {
		t0 := time.Now()
		status, hdr, body := raw(t, "GET", p.URL+"/fn/sleepy/sleep", token, nil, nil)
		if status != 504 || hdr.Get(server.HeaderError) != "timeout" {
			t.Fatalf("/sleep #%d: %d %s %s, want 504 timeout", i, status, hdr.Get(server.HeaderError), body)
		}
		// Generous: the point is that it answers, not how fast.
		if d := time.Since(t0); d > 60*time.Second {
			t.Fatalf("/sleep #%d answered after %v", i, d)
		}
		if msg := errorMessage(t, body); !strings.Contains(msg, "timeout") {
			t.Errorf("error %q does not say timeout", msg)
		}
	}
	if res := invoke(t, p, "sleepy", &server.InvokeRequest{Path: "/ok"}); string(res.Body) != "ok\n" {
		t.Fatalf("after /sleep: %q", res.Body)
	}
}
