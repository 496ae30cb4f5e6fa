//go:build cgo

package wasmtime

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/engine/wazero"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// BenchmarkWarm compares a warm call (encode, thaw_alloc, thaw_handle,
// decode) on this engine and on wazero, each with its own deadline
// mechanism armed: hello is mostly the ABI and the host calls around the
// handler, pyaes mostly guest code. For a ratio, run both engines in one
// process, several times:
//
//	go test -run '^$' -bench Warm -count 5 ./internal/engine/wasmtime/
func BenchmarkWarm(b *testing.B) {
	ctx := context.Background()
	engines := []struct {
		name string
		open func() (engine.Engine, error)
	}{
		{Name, func() (engine.Engine, error) { return New(ctx, engine.Config{CacheDir: cacheDir}) }},
		{wazero.Name, func() (engine.Engine, error) { return wazero.New(ctx, engine.Config{CacheDir: cacheDir}) }},
	}
	for _, g := range []struct {
		name, pkg string
		req       *abi.Request
	}{
		{"hello", "examples/hello", get("/x", "name=thaw")},
		{"pyaes", "examples/suite/pyaes", get("/", "length=2000&iterations=1")},
	} {
		wasm := testwasm.Build(b, g.pkg)
		for _, en := range engines {
			b.Run(g.name+"/"+en.name, func(b *testing.B) {
				inst := bootBench(b, en.open, wasm)
				for range 10 { // warm up
					if _, err := inst.Invoke(ctx, g.req); err != nil {
						b.Fatal(err)
					}
				}
				for b.Loop() {
					if resp, err := inst.Invoke(ctx, g.req); err != nil || resp.Status != 200 {
						b.Fatalf("%+v, %v", resp, err)
					}
				}
			})
		}
	}
}

// BenchmarkCallAfter measures what a long-lived instance's warm call
// (the floor thaw bench restore divides by) owes to the state the machine
// is in. Each iteration times hello's call three ways, interleaved so that
// their ratios come from one run: after copying 8 MiB between two
// unrelated buffers, which evicts the nearer caches as a restore's copy of
// its working set does (evicted-call-ns); right after that call, with
// everything hot (hot-call-ns); after a TLB shootdown of the process,
// madvise(MADV_DONTNEED) of one page of an unrelated mapping, as a region
// scrub, a munmap or an instance's teardown does (flushed-call-ns, the
// madvise itself in flush-ns). An idle wait is not among them: a sleep in
// the loop slows every call and copy of the iterations after it (hot
// calls 32 µs instead of 16), which is "What the first call pays for" in
// docs/restore.md; the timeline of a start is there too:
//
//	go test -run '^$' -bench CallAfter -count 5 ./internal/engine/wasmtime/
func BenchmarkCallAfter(b *testing.B) {
	ctx := context.Background()
	inst := boot(b, compile(b, newEngine(b), "examples/hello"), cfg)
	page, err := unix.Mmap(-1, 0, engine.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(page)
	src, dst := make([]byte, 8<<20), make([]byte, 8<<20)
	req := get("/x", "name=thaw")
	// timed runs f and returns how long it took.
	timed := func(f func()) time.Duration {
		t0 := time.Now()
		f()
		return time.Since(t0)
	}
	call := func() {
		if resp, err := inst.Invoke(ctx, req); err != nil || resp.Status != 200 {
			b.Fatalf("%+v, %v", resp, err)
		}
	}
	flush := func() {
		page[0] = 1 // present again, so that the advice has a page to drop
		if err := unix.Madvise(page, unix.MADV_DONTNEED); err != nil {
			b.Fatal(err)
		}
	}
	for range 10 { // warm up
		call()
	}
	var evicted, hot, flushed, flushing time.Duration
	n := 0
	for b.Loop() {
		copy(dst, src)
		evicted += timed(call)
		hot += timed(call)
		flushing += timed(flush)
		flushed += timed(call)
		n++
	}
	for _, m := range []struct {
		d    time.Duration
		unit string
	}{{evicted, "evicted-call-ns"}, {hot, "hot-call-ns"}, {flushed, "flushed-call-ns"}, {flushing, "flush-ns"}} {
		b.ReportMetric(float64(m.d.Nanoseconds())/float64(n), m.unit)
	}
}

// bootBench opens an engine, compiles wasm and boots an instance, all
// closed when b ends.
func bootBench(b *testing.B, open func() (engine.Engine, error), wasm []byte) engine.Instance {
	b.Helper()
	ctx := context.Background()
	e, err := open()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(ctx) })
	m, err := e.Compile(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(ctx) })
	inst, _, err := m.Boot(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { inst.Close(ctx) })
	return inst
}
