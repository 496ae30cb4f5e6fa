package integration

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/worker"
)

// BenchmarkWarmInvoke measures a warm invocation of hello through the HTTP
// server (a separate process over loopback) and directly through
// worker.Invoke in this process; the difference is the API's overhead.
func BenchmarkWarmInvoke(b *testing.B) {
	b.Run("http", func(b *testing.B) {
		p := shared(b)
		deploy(b, p, "bench", "examples/hello", api.Config{MaxInstances: 1})
		hc := &http.Client{}
		req, err := http.NewRequest("GET", p.URL+"/fn/bench/?name=b", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Thaw-Mode", string(restore.Warm))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Thaw-Start") != "warm" {
				b.Fatalf("status %d start %q", resp.StatusCode, resp.Header.Get("X-Thaw-Start"))
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		ctx := context.Background()
		w, err := worker.Open(ctx, worker.Options{DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close(ctx)
		wasm, _ := module(b, "examples/hello")
		if _, err := w.Deploy(ctx, "bench", wasm, worker.Config{MaxInstances: 1}); err != nil {
			b.Fatal(err)
		}
		req := &abi.Request{Method: "GET", Path: "/", RawQuery: "name=b", Header: http.Header{}}
		opts := worker.InvokeOptions{Mode: restore.Warm}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			res, err := w.Invoke(ctx, "bench", req, opts)
			if err != nil {
				b.Fatal(err)
			}
			if res.Timing.StartKind != "warm" {
				b.Fatalf("start %q", res.Timing.StartKind)
			}
		}
	})
}
