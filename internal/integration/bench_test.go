package integration

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

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
		opts := worker.InvokeOptions{Mode: restore.Bulk}
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

// BenchmarkRestoreJSHello measures, in one run, a request to a fresh
// instance restored from the deploy snapshot (the default restore mode) of
// the Go hello and of the JavaScript hello (examples/js/hello), alternating
// them. It reports the mean wall time of each and their ratio, js/go; the
// JavaScript function's snapshot holds the script compiled and its top
// level run, so a restore does no JavaScript set-up.
func BenchmarkRestoreJSHello(b *testing.B) {
	ctx := context.Background()
	w, err := worker.Open(ctx, worker.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(ctx)
	fns := []struct{ name, pkg, want string }{
		{"go", "examples/hello", "hello, b (GET /)\n"},
		{"js", "examples/js/hello", "hello, b (GET /)\n"},
	}
	for _, f := range fns {
		wasm, _ := module(b, f.pkg)
		if _, err := w.Deploy(ctx, f.name, wasm, worker.Config{MaxInstances: 1}); err != nil {
			b.Fatal(err)
		}
	}
	req := &abi.Request{Method: "GET", Path: "/", RawQuery: "name=b", Header: http.Header{}}
	opts := worker.InvokeOptions{Mode: restore.Bulk}
	var total, start, exec [2]time.Duration
	b.ResetTimer()
	for b.Loop() {
		for i, f := range fns {
			t0 := time.Now()
			res, err := w.Invoke(ctx, f.name, req, opts)
			total[i] += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			start[i] += res.Timing.Start
			exec[i] += res.Timing.Exec
			if res.Timing.StartKind != "restore" || string(res.Response.Body) != f.want {
				b.Fatalf("%s: start %q, body %q", f.name, res.Timing.StartKind, res.Response.Body)
			}
		}
	}
	goMS := float64(total[0].Microseconds()) / 1e3 / float64(b.N)
	jsMS := float64(total[1].Microseconds()) / 1e3 / float64(b.N)
	b.ReportMetric(goMS, "go-ms")
	b.ReportMetric(jsMS, "js-ms")
	b.ReportMetric(jsMS/goMS, "js/go")
	for i, f := range fns {
		b.Logf("%s: start %v, exec %v per request", f.name, start[i]/time.Duration(b.N), exec[i]/time.Duration(b.N))
	}
}
