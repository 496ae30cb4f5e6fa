package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Prewarm leaves one idle instance that the next request uses warm, does
// nothing while one is idle, and knows no unknown function.
func TestPrewarm(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "hello", "examples/hello", Config{})
	ctx := context.Background()
	if err := w.Evict(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if n := w.Idle("hello"); n != 0 {
		t.Fatalf("idle after evict: %d", n)
	}
	for range 2 {
		if err := w.Prewarm(ctx, "hello"); err != nil {
			t.Fatal(err)
		}
		if n := w.Idle("hello"); n != 1 {
			t.Fatalf("idle after pre-warm: %d, want 1", n)
		}
	}
	if res := invoke(t, w, "hello", get("/"), InvokeOptions{}); res.Timing.StartKind != "warm" {
		t.Fatalf("request after pre-warm started %s, want warm", res.Timing.StartKind)
	}
	if err := w.Prewarm(ctx, "nosuch"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("pre-warm of an unknown function: %v", err)
	}
	if n := w.Idle("nosuch"); n != 0 {
		t.Fatalf("idle of an unknown function: %d", n)
	}
}
