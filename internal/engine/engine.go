// Package engine is the seam between thaw and the WebAssembly engines that
// run its functions, and the memory that thaw owns for them.
//
// An Engine compiles a function's module; a Module boots instances (runs the
// reactor's _initialize in fresh memory) or restores them from captured State
// over a Region that a restore mode has already filled, mapped or registered
// for lazy paging; an Instance serves one request at a time. Two engines
// implement the seam: internal/engine/wazero (pure Go) and
// internal/engine/wasmtime (cgo). Each registers itself with Register; Open
// starts one by name. Both pass the shared conformance suite in
// internal/engine/enginetest.
//
// What both engines share lives here: the Region and its pool (a linear
// memory is thaw's, not the engine's), the captured State (wasm-level, so a
// snapshot taken on one engine restores on the other), the module
// preparation (Prepare), the guest's continuing clock, the deadline-aware
// sleep, the stderr tail and the classification of guest faults.
package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Config configures an Engine.
type Config struct {
	// CacheDir holds compiled machine code across processes; empty keeps it
	// in memory only. Each engine keeps its own files under it.
	CacheDir string
}

// Engine compiles function modules. One engine serves every function of a
// worker; it is safe for concurrent use.
type Engine interface {
	// Name is the name the engine is registered under.
	Name() string
	// Compile validates a function module and compiles it. A module that is
	// not valid wasm, or lacks the thaw ABI exports, fails with
	// errdefs.ErrInvalid.
	Compile(ctx context.Context, wasm []byte) (Module, error)
	// Close releases the engine and every instance still open.
	Close(ctx context.Context) error
}

// Module is a compiled function. It is safe for concurrent use.
type Module interface {
	// Boot instantiates the module in a fresh region and runs its
	// initialisation within cfg.InitTimeout.
	Boot(ctx context.Context, cfg InstanceConfig) (Instance, BootStats, error)
	// Restore instantiates the module over region, whose first st.Pages
	// wasm pages a restore mode has already made hold the snapshot's memory,
	// sets every mutable global from st, continues the guest's clock from
	// st.Nanotime and runs the guest's thaw_on_restore export, if any.
	// Restore takes ownership of region: it is freed with the instance, or
	// on error.
	Restore(ctx context.Context, cfg InstanceConfig, st *State, region *Region) (Instance, error)
	// RestoreWhen is Restore over a region whose memory a restore mode is
	// still preparing: ready finishes it, in the calling goroutine, while
	// the engine instantiates the restore module on another, or after the
	// engine has reset an instance kept with the region (WhileReady);
	// instantiation writes and reads no page of the region, and the engine
	// waits for ready before it grows the memory, sets a global or runs
	// guest code. If ready fails, RestoreWhen returns ready's error and
	// frees the region. A nil ready is Restore.
	RestoreWhen(ctx context.Context, cfg InstanceConfig, st *State, region *Region, ready func() error) (Instance, error)
	// KeepsInstances reports whether an instance closed in a pooled
	// region stays with the region, for the next Restore there to reset
	// instead of instantiating (Region.Bequeath).
	KeepsInstances() bool
	// PrepareRestore does ahead of time what the first Restore would
	// (compiling the restore module), and checks that a snapshot of pages
	// wasm pages fits the module's declared memory.
	PrepareRestore(ctx context.Context, pages uint32) error
	// Close releases the compiled code.
	Close(ctx context.Context) error
}

// Instance is one running sandbox of a function. It is not safe for
// concurrent use: an instance serves one request at a time.
type Instance interface {
	// Region returns the instance's memory region.
	Region() *Region
	// Dead reports whether the instance faulted or was killed and must be
	// discarded.
	Dead() bool
	// Invoke serves one request within the instance's timeout. Any error
	// other than errdefs.ErrInvalid leaves the instance dead: a guest that
	// trapped, panicked, overran its deadline or its memory cap is never
	// reused.
	Invoke(ctx context.Context, req *abi.Request) (*abi.Response, error)
	// BeforeSnapshot runs the guest's thaw_before_snapshot export, if it
	// has one, on an idle instance about to be captured. An error leaves
	// the instance unfit to snapshot.
	BeforeSnapshot(ctx context.Context) error
	// Idle runs the guest's thaw_idle export, if it has one, on an instance
	// that has just served a request and is not serving another. It
	// reports whether the export exists. An error leaves the instance
	// unfit to serve.
	Idle(ctx context.Context) (bool, error)
	// Capture returns the instance's state and its linear memory. The
	// memory is the live region, not a copy: capture it between requests
	// and persist it before the instance runs again.
	Capture() (*State, []byte)
	// Close stops the instance and releases its memory.
	Close(ctx context.Context)
}

// InstanceConfig are the limits of one instance.
type InstanceConfig struct {
	// MemoryLimit caps the linear memory in bytes.
	MemoryLimit uint64
	// Timeout bounds each invocation.
	Timeout time.Duration
	// InitTimeout bounds _initialize at boot (default: Timeout).
	InitTimeout time.Duration
}

// BootStats are the stages of a cold boot.
type BootStats struct {
	Instantiate time.Duration
	Init        time.Duration
}

// State is everything of an instance that lives outside its linear memory
// and must be captured to resume it exactly. It is defined at the level of
// WebAssembly, not of an engine.
type State struct {
	// Pages is the linear memory's length in wasm pages.
	Pages uint32
	// Globals holds the raw bits of every defined global, in module order.
	Globals []uint64
	// Nanotime is the guest's monotonic clock at capture.
	Nanotime int64
}

// WasmPageSize is the size of a WebAssembly memory page.
const WasmPageSize = 65536

// CaptureDeploy takes a booted instance's deploy snapshot: it runs the
// guest's thaw_before_snapshot (BeforeSnapshot), then captures it
// (Capture). It is the one sequence the worker's deploy and the benchmarks
// that measure a deploy snapshot share, so that a benchmark restores what
// production restores. An error leaves the instance unfit to snapshot.
func CaptureDeploy(ctx context.Context, inst Instance) (*State, []byte, error) {
	if err := inst.BeforeSnapshot(ctx); err != nil {
		return nil, nil, err
	}
	st, mem := inst.Capture()
	return st, mem, nil
}

// Opener starts an engine.
type Opener func(ctx context.Context, cfg Config) (Engine, error)

var (
	registryMu sync.Mutex
	registry   = map[string]registration{}
)

type registration struct {
	open Opener
	rank int
}

// Register makes an engine available to Open under name. rank orders the
// engines for Default: the lower, the more preferred. Engine packages call
// it from their init; registering a name twice panics, as a programming
// error.
func Register(name string, rank int, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("engine: " + name + " registered twice")
	}
	registry[name] = registration{open: open, rank: rank}
}

// Names lists the registered engines, most preferred first.
func Names() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := registry[names[i]], registry[names[j]]
		return ri.rank < rj.rank || ri.rank == rj.rank && names[i] < names[j]
	})
	return names
}

// Default is the most preferred registered engine ("" if none is).
func Default() string {
	if n := Names(); len(n) > 0 {
		return n[0]
	}
	return ""
}

// Known are the engines thaw has, whether or not this build includes them.
var Known = []string{"wasmtime", "wazero"}

// Open starts the engine registered as name; "" means Default. An unknown
// name, or one this build does not include (wasmtime needs cgo), fails with
// errdefs.ErrInvalid.
func Open(ctx context.Context, name string, cfg Config) (Engine, error) {
	if name == "" {
		name = Default()
	}
	registryMu.Lock()
	r, ok := registry[name]
	registryMu.Unlock()
	if !ok {
		if slices.Contains(Known, name) {
			return nil, fmt.Errorf("engine %q is not in this build (it needs cgo; built with CGO_ENABLED=0?); this build has %v: %w", name, Names(), errdefs.ErrInvalid)
		}
		return nil, fmt.Errorf("unknown engine %q (this build has %v): %w", name, Names(), errdefs.ErrInvalid)
	}
	return r.open(ctx, cfg)
}
