//go:build cgo

package wasmtime

import (
	"context"
	"testing"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/engine/wazero"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// BenchmarkWarmHello compares a warm call of examples/hello (encode,
// thaw_alloc, thaw_handle, decode) on this engine and on wazero, with the
// same deadline on both (each engine's own mechanism). Run the two in one
// process for a ratio: go test -run '^$' -bench WarmHello ./internal/engine/wasmtime/
func BenchmarkWarmHello(b *testing.B) {
	ctx := context.Background()
	wasm := testwasm.Build(b, "examples/hello")
	req := get("/x", "name=thaw")
	b.Run("wasmtime", func(b *testing.B) {
		inst := boot(b, compile(b, newEngine(b), "examples/hello"), cfg)
		benchInvoke(b, func() (*abi.Response, error) { return inst.Invoke(ctx, req) })
	})
	b.Run("wazero", func(b *testing.B) {
		e, err := wazero.New(ctx, engine.Config{CacheDir: cacheDir})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close(ctx)
		m, err := e.Compile(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		inst, _, err := m.Boot(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer inst.Close(ctx)
		benchInvoke(b, func() (*abi.Response, error) { return inst.Invoke(ctx, req) })
	})
}

func benchInvoke(b *testing.B, invoke func() (*abi.Response, error)) {
	for range 10 { // warm up
		if _, err := invoke(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if resp, err := invoke(); err != nil || resp.Status != 200 {
			b.Fatalf("%+v, %v", resp, err)
		}
	}
}
