//go:build cgo

package wasmtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/engine/wasmtime/capi"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Name is the name the engine registers under.
const Name = "wasmtime"

// Version is the wasmtime release linked in (wasmtime-go's major version
// follows wasmtime's); it is part of every compilation cache key.
const Version = "wasmtime-go/v39.0.1"

// EpochTick is how often the engine's epoch advances. At every tick a
// running call checks whether it was cancelled or has used its ticks (a
// deadline is a number of ticks), so a guest is stopped at most two ticks
// (plus the time to its next loop header or function entry) after its
// deadline, never before, and within about a tick of a cancellation.
// Each tick is one cgo call on one goroutine.
const EpochTick = 2 * time.Millisecond

// rank makes wasmtime the default engine of every build that has it (one
// with cgo), ahead of wazero (rank 20): with the same safety (deadlines and
// cancellation stop any guest, thaw owns its memory) it runs guest code 3-6
// times faster and initialises a heavy guest 4-6 times faster
// (docs/engine.md), and the whole test suite passes with it as the
// default. `thaw serve --engine wazero`,
// or a function's engine, goes back.
const rank = 10

func init() {
	engine.Register(Name, rank, func(ctx context.Context, cfg engine.Config) (engine.Engine, error) {
		return New(ctx, cfg)
	})
}

// configKey names the settings that change compiled code; it is part of
// every compilation cache key.
const configKey = "epoch,static-memory-4g-guard-32m,no-cow,cranelift-speed"

// Engine compiles and runs functions on one wasmtime engine. It is safe for
// concurrent use.
type Engine struct {
	engine   *wasmtime.Engine
	linker   *wasmtime.Linker
	cacheDir string

	// The epoch ticker runs until the engine is closed and no instance is
	// open: an instance still running after Close must still be stopped
	// at its deadline.
	stop      chan struct{}
	live      atomic.Int64 // open instances
	closeOnce sync.Once
}

// New starts an engine and its epoch ticker. Compiled code is cached under
// cfg.CacheDir/wasmtime.
func New(ctx context.Context, cfg engine.Config) (*Engine, error) {
	c := wasmtime.NewConfig()
	c.SetEpochInterruption(true)
	c.SetCraneliftOptLevel(wasmtime.OptLevelSpeed)
	capi.Configure(c, engine.MemoryReservation, engine.GuardSize)
	e := &Engine{engine: wasmtime.NewEngineWithConfig(c), stop: make(chan struct{})}
	if cfg.CacheDir != "" {
		e.cacheDir = filepath.Join(cfg.CacheDir, "wasmtime")
		if err := os.MkdirAll(e.cacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("compilation cache: %w", err)
		}
	}
	l, err := newLinker(e.engine)
	if err != nil {
		return nil, err
	}
	e.linker = l
	go e.tick()
	return e, nil
}

// tick advances the epoch every EpochTick until the engine is closed and
// its last instance too.
func (e *Engine) tick() {
	t := time.NewTicker(EpochTick)
	defer t.Stop()
	for range t.C {
		e.engine.IncrementEpoch()
		select {
		case <-e.stop:
			if e.live.Load() == 0 {
				return
			}
		default:
		}
	}
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Close releases the engine. Modules and instances still open keep the
// underlying wasmtime engine, and the epoch ticker that enforces their
// deadlines, until they close.
func (e *Engine) Close(context.Context) error {
	e.closeOnce.Do(func() { close(e.stop) })
	return nil
}

// Compile validates a function module and compiles its boot module (from
// the cache when it holds it). A module that is not valid wasm, lacks the
// thaw ABI exports or imports anything but the WASI functions the engine
// provides fails with errdefs.ErrInvalid.
func (e *Engine) Compile(_ context.Context, wasm []byte) (engine.Module, error) {
	p, err := engine.Prepare(wasm)
	if err != nil {
		return nil, err
	}
	code, err := p.BootWasm()
	if err != nil {
		return nil, err
	}
	boot, err := e.compile(code)
	if err != nil {
		return nil, err
	}
	if err := e.checkImports(boot); err != nil {
		boot.Close()
		return nil, err
	}
	m := &Module{e: e, prep: p, boot: boot}
	if p.OneModule() {
		m.restore = boot
	}
	return m, nil
}

// checkImports fails with errdefs.ErrInvalid if m imports anything the
// linker does not define.
func (e *Engine) checkImports(m *wasmtime.Module) error {
	store := wasmtime.NewStore(e.engine)
	defer store.Close()
	for _, im := range m.Imports() {
		name := ""
		if n := im.Name(); n != nil {
			name = *n
		}
		if e.linker.Get(store, im.Module(), name) == nil {
			return fmt.Errorf("module imports %s.%s, which thaw does not provide: %w", im.Module(), name, errdefs.ErrInvalid)
		}
	}
	return nil
}

// compile compiles wasm, or deserializes it from the cache. The cache key
// is the module's SHA-256 with the wasmtime version and the engine
// settings; a file is its serialized module followed by the SHA-256 of
// that, so a damaged file (wasmtime trusts what it deserializes) is
// recompiled instead of run.
func (e *Engine) compile(wasm []byte) (*wasmtime.Module, error) {
	var path string
	if e.cacheDir != "" {
		k := sha256.New()
		k.Write(wasm)
		k.Write([]byte("\x00" + Version + "\x00" + configKey))
		path = filepath.Join(e.cacheDir, hex.EncodeToString(k.Sum(nil))+".cwasm")
		if m := e.load(path); m != nil {
			return m, nil
		}
	}
	m, err := wasmtime.NewModule(e.engine, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile module: %v: %w", err, errdefs.ErrInvalid)
	}
	if path != "" {
		if b, err := m.Serialize(); err == nil {
			sum := sha256.Sum256(b)
			// A cache that cannot be written costs a compilation next
			// time, nothing else.
			_ = atomicfile.WriteFile(path, append(b, sum[:]...), 0o600)
		}
	}
	return m, nil
}

// load deserializes the cached module at path, or returns nil if there is
// none or it is damaged or stale.
func (e *Engine) load(path string) *wasmtime.Module {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < sha256.Size {
		return nil
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if s := sha256.Sum256(body); string(s[:]) != string(sum) {
		return nil
	}
	m, err := wasmtime.NewModuleDeserialize(e.engine, body)
	if err != nil {
		return nil
	}
	return m
}
