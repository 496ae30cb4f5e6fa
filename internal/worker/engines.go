package worker

import (
	"context"
	"sync"

	"github.com/thaw-run/thaw/internal/engine"
	// The engines a worker can run functions on; each registers itself.
	// The wasmtime engine is only in builds with cgo.
	_ "github.com/thaw-run/thaw/internal/engine/wasmtime"
	_ "github.com/thaw-run/thaw/internal/engine/wazero"
)

// engines are the WebAssembly engines of a worker: its default, opened at
// start, and any other a function's config names, opened on first use and
// shared by every function on it.
type engines struct {
	def string
	cfg engine.Config

	mu sync.Mutex
	m  map[string]engine.Engine
}

// openEngines opens the default engine name ("" for engine.Default()).
func openEngines(ctx context.Context, name string, cfg engine.Config) (*engines, error) {
	if name == "" {
		name = engine.Default()
	}
	es := &engines{def: name, cfg: cfg, m: map[string]engine.Engine{}}
	if _, err := es.get(ctx, name); err != nil {
		return nil, err
	}
	return es, nil
}

// get returns the engine name ("": the default), opening it once.
func (es *engines) get(ctx context.Context, name string) (engine.Engine, error) {
	if name == "" {
		name = es.def
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	if e, ok := es.m[name]; ok {
		return e, nil
	}
	e, err := engine.Open(ctx, name, es.cfg)
	if err != nil {
		return nil, err
	}
	es.m[name] = e
	return e, nil
}

// compile compiles wasm on the engine name ("": the default).
func (es *engines) compile(ctx context.Context, name string, wasm []byte) (engine.Module, error) {
	e, err := es.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return e.Compile(ctx, wasm)
}

// close closes every engine opened.
func (es *engines) close(ctx context.Context) {
	es.mu.Lock()
	defer es.mu.Unlock()
	for _, e := range es.m {
		_ = e.Close(ctx)
	}
	es.m = nil
}
