// Package worker orchestrates function instances on one machine: the
// function registry in the data directory, a warm pool per function with
// keep-alive and scale to zero, snapshots taken at deploy, and instance
// starts in the function's restore mode with a cold-boot fallback.
package worker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/crashpoint"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// DefaultRegionPoolMiB is the default bound on idle instance memory kept
// for reuse (Options.RegionPoolMiB).
const DefaultRegionPoolMiB = 1024

// Options configure a Worker.
type Options struct {
	// DataDir holds the registry, modules, snapshots and compiled code.
	DataDir string
	// Logger receives operational logs (default slog.Default()).
	Logger *slog.Logger
	// NoPager disables lazy restore modes (lazy, reap, bulk fall back to
	// cold); for environments without userfaultfd.
	NoPager bool
	// RegionPoolMiB bounds the memory of finished instances kept for reuse
	// by eager and bulk restores of the same function
	// (engine.RegionPool; default DefaultRegionPoolMiB, negative: none).
	RegionPoolMiB int
	// Store, if set, is the snapshot store: every snapshot is published
	// there in the background, and a snapshot whose local directory is
	// missing or unusable is restored from there (store.go). Nil: local
	// snapshots only. An empty CacheDir defaults to DataDir/store-cache.
	Store *storesnap.Config
}

// Worker runs functions. Its methods are safe for concurrent use.
type Worker struct {
	dir      string
	log      *slog.Logger
	eng      *engine.Engine
	pager    *pager.Pager
	restorer *restore.Restorer
	regions  *engine.RegionPool // nil: restores take new regions
	metrics  *metrics
	// store is the snapshot store; nil without Options.Store.
	store *workerStore

	mu  sync.Mutex
	fns map[string]*function

	// ctx lives as long as the worker, for background work.
	ctx    context.Context
	cancel context.CancelFunc

	stop chan struct{}
	done chan struct{}
}

// Open loads the registry in opts.DataDir and starts the engine and the
// pager process.
func Open(ctx context.Context, opts Options) (*Worker, error) {
	if opts.DataDir == "" {
		return nil, fmt.Errorf("worker: no data directory: %w", errdefs.ErrInvalid)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for _, d := range []string{"functions", "snapshots", "cache"} {
		if err := os.MkdirAll(filepath.Join(opts.DataDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("worker: data directory: %w", err)
		}
	}
	eng, err := engine.New(ctx, engine.Config{CacheDir: filepath.Join(opts.DataDir, "cache")})
	if err != nil {
		return nil, err
	}
	w := &Worker{dir: opts.DataDir, log: opts.Logger, eng: eng, metrics: newMetrics(),
		fns: map[string]*function{}, stop: make(chan struct{}), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.restorer = &restore.Restorer{}
	if opts.RegionPoolMiB == 0 {
		opts.RegionPoolMiB = DefaultRegionPoolMiB
	}
	if opts.RegionPoolMiB > 0 {
		w.regions = engine.NewRegionPool(uint64(opts.RegionPoolMiB) << 20)
		w.restorer.Regions = w.regions
		w.metrics.watchRegions(w.regions)
	}
	if !opts.NoPager {
		p, err := pager.Start(ctx)
		if err != nil {
			w.log.Warn("pager unavailable: lazy, reap and bulk restores will fall back to cold", "err", err)
		} else {
			w.pager = p
			w.restorer.Pager = p
		}
	}
	// Hook (store.go): open the snapshot store before loading the
	// registry, whose snapshots may exist only there.
	if opts.Store != nil {
		s, err := w.openStore(ctx, *opts.Store, opts.DataDir, w.pager, w.metrics.reg)
		if err != nil {
			w.cancel()
			_ = eng.Close(ctx)
			if w.pager != nil {
				_ = w.pager.Close()
			}
			return nil, err
		}
		w.store = s
	}
	if err := w.load(ctx); err != nil {
		w.Close(ctx)
		return nil, err
	}
	go w.reaper()
	return w, nil
}

// Registry returns the Prometheus registry with the worker's metrics.
func (w *Worker) Registry() *prometheus.Registry { return w.metrics.reg }

// Close stops every instance and the pager.
func (w *Worker) Close(ctx context.Context) {
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
	}
	w.mu.Lock()
	fns := w.fns
	w.fns = map[string]*function{}
	w.mu.Unlock()
	for _, f := range fns {
		f.shutdown(ctx)
		f.background.Wait()
		f.savePolicy()
	}
	if w.store != nil {
		w.store.close() // hook (store.go): let running publishes finish
	}
	w.cancel()
	_ = w.eng.Close(ctx)
	if w.regions != nil {
		w.regions.Close()
	}
	if w.pager != nil {
		_ = w.pager.Close()
	}
}

// record is a function's persisted registry entry.
type record struct {
	Name       string    `json:"name"`
	Config     Config    `json:"config"`
	ModuleSHA  string    `json:"module_sha256"`
	ModuleSize int       `json:"module_size"`
	Deployed   time.Time `json:"deployed"`
	Snapshot   string    `json:"snapshot,omitempty"`
}

// Info describes a deployed function.
type Info struct {
	Name       string    `json:"name"`
	Config     Config    `json:"config"`
	ModuleSHA  string    `json:"module_sha256"`
	ModuleSize int       `json:"module_size"`
	Deployed   time.Time `json:"deployed"`
	// Snapshot describes the function's memory snapshot, if any.
	Snapshot *SnapshotInfo `json:"snapshot,omitempty"`
	// Instances counts live instances.
	Idle int `json:"idle_instances"`
	Busy int `json:"busy_instances"`
	// PoolSnapshots counts the policy's snapshots beyond the first.
	PoolSnapshots int `json:"pool_snapshots"`
	// Policy is the function's snapshot policy.
	Policy string `json:"policy"`
}

// SnapshotInfo summarises a snapshot.
type SnapshotInfo struct {
	ID          string `json:"id"`
	MemoryBytes int64  `json:"memory_bytes"`
	DataBytes   int64  `json:"data_bytes"`
	WSBytes     int64  `json:"working_set_bytes,omitempty"`
}

func (w *Worker) fnDir(name string) string   { return filepath.Join(w.dir, "functions", name) }
func (w *Worker) snapDir(name string) string { return filepath.Join(w.dir, "snapshots", name) }

// load reads every persisted function.
func (w *Worker) load(ctx context.Context) error {
	entries, err := os.ReadDir(filepath.Join(w.dir, "functions"))
	if err != nil {
		return fmt.Errorf("worker: read registry: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		if err := w.loadOne(ctx, e.Name()); err != nil {
			w.log.Error("skipping function that failed to load", "function", e.Name(), "err", err)
		}
	}
	return nil
}

func (w *Worker) loadOne(ctx context.Context, name string) error {
	b, err := os.ReadFile(filepath.Join(w.fnDir(name), "function.json"))
	if err != nil {
		return err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("function.json: %w", err)
	}
	wasm, err := os.ReadFile(filepath.Join(w.fnDir(name), "module.wasm"))
	if err != nil {
		return err
	}
	mod, err := w.eng.Compile(ctx, wasm)
	if err != nil {
		return err
	}
	f, err := w.newFunction(rec, mod)
	if err != nil {
		return err
	}
	if rec.Snapshot != "" {
		// Hook (store.go): falls back to the store's copy.
		snap, err := w.openSnapshot(ctx, f, rec.Snapshot)
		if err != nil {
			w.log.Warn("snapshot unusable; instances boot cold until redeploy", "function", name, "err", err)
		} else if err := mod.PrepareRestore(ctx, snap.Meta.State.Pages); err != nil {
			w.log.Warn("restore module failed to compile; instances boot cold", "function", name, "err", err)
		} else {
			f.snap = snap
		}
	}
	f.loadPolicy()
	w.mu.Lock()
	w.fns[name] = f
	w.mu.Unlock()
	return nil
}

// Deploy stores, compiles and snapshots a function, replacing any function
// of that name. A malformed module fails with errdefs.ErrInvalid and changes
// nothing.
func (w *Worker) Deploy(ctx context.Context, name string, wasm []byte, cfg Config) (*Info, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mod, err := w.eng.Compile(ctx, wasm)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wasm)
	rec := record{Name: name, Config: cfg, ModuleSHA: hex.EncodeToString(sum[:]), ModuleSize: len(wasm), Deployed: time.Now().UTC()}
	f, err := w.newFunction(rec, mod)
	if err != nil {
		_ = mod.Close(ctx)
		return nil, err
	}

	// Boot one instance now: it proves the module initialises, provides the
	// snapshot, and then serves as the first warm instance.
	inst, _, err := mod.Boot(ctx, f.instanceConfig())
	if err != nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("deploy %s: boot: %w", name, err)
	}
	if cfg.RestoreMode != restore.Cold {
		if err := inst.BeforeSnapshot(ctx); err != nil {
			inst.Close(ctx)
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("deploy %s: %w", name, err)
		}
		st, mem := inst.Capture()
		snap, err := w.writeSnapshot(f, st, mem, 0)
		if err != nil {
			inst.Close(ctx)
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("deploy %s: %w", name, err)
		}
		if err := mod.PrepareRestore(ctx, snap.Meta.State.Pages); err != nil {
			inst.Close(ctx)
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("deploy %s: %w", name, err)
		}
		f.snap = snap
		f.rec.Snapshot = filepath.Base(snap.Dir)
	}
	if err := w.persist(f.rec, wasm); err != nil {
		inst.Close(ctx)
		_ = mod.Close(ctx)
		return nil, err
	}
	f.adopt(inst)

	w.mu.Lock()
	old := w.fns[name]
	w.fns[name] = f
	w.mu.Unlock()
	if old != nil {
		old.shutdown(ctx)
		old.background.Wait()
		ids := append(w.snapshotDirs(name), old.snapshotIDs()...)
		w.dropStored(name, without(ids, f.rec.Snapshot)) // hook (storedelete.go)
		w.removeSnapshotsExcept(name, f.rec.Snapshot)
	}
	w.log.Info("deployed", "function", name, "module_bytes", len(wasm), "snapshot", f.rec.Snapshot)
	info := f.info()
	return &info, nil
}

// writeSnapshot stores a captured instance as a new snapshot of f, taken
// after request number request.
func (w *Worker) writeSnapshot(f *function, st *engine.State, mem []byte, request int) (*snapshot.Snapshot, error) {
	id := newID()
	meta := snapshot.Meta{ID: id, Function: f.rec.Name, ModuleSHA: f.rec.ModuleSHA, Created: time.Now().UTC(), State: *st, Request: request}
	if err := os.MkdirAll(w.snapDir(f.rec.Name), 0o755); err != nil {
		return nil, err
	}
	snap, err := snapshot.Write(filepath.Join(w.snapDir(f.rec.Name), id), meta, mem)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	w.publishLater(f.rec.Name, snap) // hook (store.go): no-op without a store
	return snap, nil
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// persist writes the registry entry and module atomically.
func (w *Worker) persist(rec record, wasm []byte) error {
	dir := w.fnDir(rec.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	if wasm != nil {
		if err := writeAtomic(filepath.Join(dir, "module.wasm"), wasm); err != nil {
			return fmt.Errorf("persist module: %w", err)
		}
		crashpoint.Hit(crashpoint.DeployModuleWritten)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "function.json"), b); err != nil {
		return fmt.Errorf("persist registry: %w", err)
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (w *Worker) removeSnapshotsExcept(name, keep string) {
	entries, _ := os.ReadDir(w.snapDir(name))
	for _, e := range entries {
		if e.Name() != keep {
			_ = os.RemoveAll(filepath.Join(w.snapDir(name), e.Name()))
		}
	}
}

// snapshotDirs lists the names of function name's snapshot directories.
func (w *Worker) snapshotDirs(name string) []string {
	entries, _ := os.ReadDir(w.snapDir(name))
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

// without returns ids with every copy of drop removed, and duplicates
// collapsed.
func without(ids []string, drop string) []string {
	seen := map[string]bool{drop: true}
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Get describes one function.
func (w *Worker) Get(name string) (*Info, error) {
	f, err := w.lookup(name)
	if err != nil {
		return nil, err
	}
	info := f.info()
	return &info, nil
}

// List describes every function, sorted by name.
func (w *Worker) List() []Info {
	w.mu.Lock()
	fns := make([]*function, 0, len(w.fns))
	for _, f := range w.fns {
		fns = append(fns, f)
	}
	w.mu.Unlock()
	out := make([]Info, 0, len(fns))
	for _, f := range fns {
		out = append(out, f.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Delete removes a function, its instances and its snapshots.
func (w *Worker) Delete(ctx context.Context, name string) error {
	w.mu.Lock()
	f, ok := w.fns[name]
	delete(w.fns, name)
	w.mu.Unlock()
	if !ok {
		return fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	f.shutdown(ctx)
	f.background.Wait()
	// Hook (storedelete.go): the stored copies go too, local or not.
	w.dropStored(name, without(append(w.snapshotDirs(name), f.snapshotIDs()...), ""))
	err := errors.Join(os.RemoveAll(w.fnDir(name)), os.RemoveAll(w.snapDir(name)))
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

func (w *Worker) lookup(name string) (*function, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.fns[name]
	if !ok {
		return nil, fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	return f, nil
}

// Evict closes every idle instance of a function, as a platform evicting
// its worker would; the next request starts a new instance. Instances
// settling after a request (idle call, checkpoint copy) are waited for and
// closed too.
func (w *Worker) Evict(ctx context.Context, name string) error {
	f, err := w.lookup(name)
	if err != nil {
		return err
	}
	f.awaitSettled()
	f.reap(ctx, time.Now().Add(time.Duration(f.rec.Config.KeepAlive)+time.Hour), true)
	return nil
}

// WaitCheckpoints waits for a function's background snapshot and working-set
// writes.
func (w *Worker) WaitCheckpoints(name string) {
	if f, err := w.lookup(name); err == nil {
		f.background.Wait()
	}
}

// reaper releases idle instances past their keep-alive (scale to zero) and
// keeps min_instances warm.
func (w *Worker) reaper() {
	defer close(w.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		fns := make([]*function, 0, len(w.fns))
		for _, f := range w.fns {
			fns = append(fns, f)
		}
		w.mu.Unlock()
		for _, f := range fns {
			f.reap(context.Background(), time.Now(), false)
		}
	}
}
