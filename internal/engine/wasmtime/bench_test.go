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
				e, err := en.open()
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close(ctx)
				m, err := e.Compile(ctx, wasm)
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close(ctx)
				inst, _, err := m.Boot(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer inst.Close(ctx)
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
