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
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/crashpoint"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
)

// defaultBudgetFallback is the memory budget when the machine's memory
// cannot be read.
const defaultBudgetFallback = 4 << 30

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
	// NoSpareRegions stops the worker from preparing spare regions, in
	// the background, for bulk restores that found none in the region
	// pool (restore.Restorer.Spares; on with a region pool otherwise).
	NoSpareRegions bool
	// MemoryBudgetMiB bounds the memory of all instances together: each
	// reserves its function's memory_mib while it lives, and idle pooled
	// regions count too (budget.go). Zero takes DefaultMemoryBudget.
	MemoryBudgetMiB int
	// Engine is the WebAssembly engine of functions whose config names
	// none: "wasmtime", "wazero", or "" for engine.Default().
	Engine string
	// Store, if set, is the snapshot store: every snapshot is published
	// there in the background, and a snapshot whose local directory is
	// missing or unusable is restored from there (store.go). Nil: local
	// snapshots only. An empty CacheDir defaults to DataDir/store-cache.
	Store *stack.Config
	// KeepStored, if set, is asked before the stored copy of a snapshot
	// is deleted (a redeploy, a pruned pool, a deletion): when it says
	// true the stored copy stays, because another worker of the cluster
	// may still restore it (internal/registry's References). The local
	// directory is removed either way.
	KeepStored func(name, id string) bool
	// Holders, if set, names the cluster's workers likely to hold the
	// chunks of function name's snapshots in their caches, best first:
	// a restore from the store asks them (Store.Peer, Store.PeerURL)
	// before the remote.
	Holders func(name string) []string
	// Published, if set, is told (from the background publish) each time
	// this worker has published a snapshot of function name that has a
	// working set: in a cluster, the other workers then adopt that
	// working set (AdoptWorkingSet) before their next restore of it rather
	// than during it.
	Published func(name, snapshotID string)
}

// Worker runs functions. Its methods are safe for concurrent use.
type Worker struct {
	dir      string
	log      *slog.Logger
	engines  *engines
	pagerMu  sync.Mutex // guards pager, replaced by superviseP
	pager    *pager.Pager
	restorer *restore.Restorer
	regions  *engine.RegionPool // nil: restores take new regions
	budget   *memBudget
	metrics  *metrics
	// snapStore is the snapshot store the worker publishes to and
	// restores from: a *workerStore, or noStore without Options.Store.
	snapStore snapshotStore

	mu  sync.Mutex
	fns map[string]*function
	// deploying holds a channel per function name being deployed or
	// deleted, closed when that is done (lockName; w.mu).
	deploying map[string]chan struct{}

	// modMu orders module garbage collection with deploys: pendingMods
	// counts modules written by deploys not yet committed, which the
	// collector must keep.
	modMu       sync.Mutex
	pendingMods map[string]int

	// ctx lives as long as the worker, for background work.
	ctx    context.Context
	cancel context.CancelFunc

	// late holds work invocations left for after their response
	// (after.go), which the reaper starts if no one does.
	late lateWork

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
	for _, d := range []string{"functions", "snapshots", "cache", modulesDir} {
		// The data directory holds guest memory in clear: only the
		// worker's user may enter it (Chmod: also a directory an older
		// version created 0755).
		if err := os.MkdirAll(filepath.Join(opts.DataDir, d), snapshot.DirMode); err != nil {
			return nil, fmt.Errorf("worker: data directory: %w", err)
		}
		if err := os.Chmod(filepath.Join(opts.DataDir, d), snapshot.DirMode); err != nil {
			return nil, fmt.Errorf("worker: data directory: %w", err)
		}
	}
	engs, err := openEngines(ctx, opts.Engine, engine.Config{CacheDir: filepath.Join(opts.DataDir, "cache")})
	if err != nil {
		return nil, err
	}
	w := &Worker{dir: opts.DataDir, log: opts.Logger, engines: engs, metrics: newMetrics(),
		fns: map[string]*function{}, deploying: map[string]chan struct{}{}, pendingMods: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{}), snapStore: noStore{}}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.restorer = &restore.Restorer{}
	if opts.RegionPoolMiB == 0 {
		opts.RegionPoolMiB = DefaultRegionPoolMiB
	}
	if opts.RegionPoolMiB > 0 {
		w.regions = engine.NewRegionPool(uint64(opts.RegionPoolMiB) << 20)
		w.restorer.Regions = w.regions
		w.restorer.Spares = !opts.NoSpareRegions
		w.metrics.watchRegions(w.regions, w.restorer)
	}
	budget := uint64(opts.MemoryBudgetMiB) << 20
	if opts.MemoryBudgetMiB <= 0 {
		budget = DefaultMemoryBudget()
		if budget == 0 {
			budget = defaultBudgetFallback
			w.log.Warn("machine memory unknown; memory budget defaults", "mib", budget>>20)
		}
	}
	w.budget = newMemBudget(budget, w.regions)
	w.log.Info("memory budget", "mib", budget>>20)
	w.metrics.watchBudget(w.budget)
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
		s, err := w.openStore(ctx, *opts.Store, opts.DataDir, w.metrics.reg)
		if s != nil {
			s.keep, s.holders, s.published = opts.KeepStored, opts.Holders, opts.Published
		}
		if err != nil {
			w.cancel()
			engs.close(ctx)
			if w.pager != nil {
				_ = w.pager.Close()
			}
			return nil, err
		}
		w.snapStore = s
	}
	if err := w.load(ctx); err != nil {
		w.Close(ctx)
		return nil, err
	}
	if w.pager != nil {
		go w.superviseP(w.pager)
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
	// Work left for after a response that was never sent would keep
	// the background below from ending (the reaper has stopped).
	w.late.bound.Store(0)
	for _, f := range fns {
		f.shutdown(ctx)
		w.late.runOverdue(time.Now().Add(afterBound))
		f.background.Wait()
		f.ckpt.savePolicy()
	}
	w.snapStore.close() // let running publishes finish
	w.cancel()
	w.engines.close(ctx)
	w.restorer.WaitSpares() // they use the pool and the pager
	if w.regions != nil {
		w.regions.Close()
	}
	w.pagerMu.Lock()
	p := w.pager
	w.pager = nil
	w.pagerMu.Unlock()
	if p != nil {
		_ = p.Close()
	}
}

// pagerRetry is how long the worker waits before starting a new pager when
// the last one gave up (its processes died too often within a minute).
const pagerRetry = 10 * time.Second

// superviseP starts a new pager whenever the current one gives up, so lazy
// restores fall back to cold boots only for a while, never for good.
// Sessions of the old pager were failed by it (their instances are
// discarded); new restores use the new one.
func (w *Worker) superviseP(p *pager.Pager) {
	for {
		select {
		case <-p.Done():
		case <-w.stop:
			return
		}
		w.log.Error("pager gave up; lazy restores fall back to cold until a new one starts", "retry_in", pagerRetry)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(pagerRetry):
			}
			ctx, cancel := context.WithTimeout(w.ctx, time.Minute)
			next, err := pager.Start(ctx)
			cancel()
			if err != nil {
				w.log.Error("starting a new pager", "err", err)
				continue
			}
			w.pagerMu.Lock()
			select {
			case <-w.stop:
				w.pagerMu.Unlock()
				_ = next.Close()
				return
			default:
			}
			old := w.pager
			w.pager = next
			w.pagerMu.Unlock()
			w.restorer.SetPager(next)
			if old != nil {
				_ = old.Close()
			}
			w.log.Warn("new pager started", "pid", next.Pid())
			p = next
			break
		}
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

// Info describes a deployed function. The server describes it on the wire
// as an api.FunctionInfo.
type Info struct {
	Name       string
	Config     Config
	ModuleSHA  string
	ModuleSize int
	Deployed   time.Time
	// Snapshot describes the function's memory snapshot, if any.
	Snapshot *SnapshotInfo
	// Idle and Busy count live instances.
	Idle int
	Busy int
	// PoolSnapshots counts the policy's snapshots beyond the first.
	PoolSnapshots int
	// Policy is the function's snapshot policy.
	Policy string
}

// SnapshotInfo summarises a snapshot.
type SnapshotInfo struct {
	ID          string
	MemoryBytes int64
	DataBytes   int64
	// WSBytes is the recorded working set's size (0: none yet).
	WSBytes int64
}

func (w *Worker) fnDir(name string) string   { return filepath.Join(w.dir, "functions", name) }
func (w *Worker) snapDir(name string) string { return filepath.Join(w.dir, "snapshots", name) }

// load reads every persisted function, after removing what crashed
// deploys, checkpoints and deletions left behind (cleanStart), and then
// collects the snapshots and modules no record references.
func (w *Worker) load(ctx context.Context) error {
	entries, err := os.ReadDir(filepath.Join(w.dir, "functions"))
	if err != nil {
		return fmt.Errorf("worker: read registry: %w", err)
	}
	w.cleanStart()
	for _, e := range entries {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(w.recordPath(e.Name())); errors.Is(err, os.ErrNotExist) {
			continue // removed by cleanStart
		}
		if err := w.loadOne(ctx, e.Name()); err != nil {
			w.log.Error("skipping function that failed to load", "function", e.Name(), "err", err)
		}
	}
	w.collectSnapshots()
	w.collectModules()
	return nil
}

func (w *Worker) loadOne(ctx context.Context, name string) error {
	b, err := readRecordFile(w.recordPath(name))
	if err != nil {
		return err
	}
	rec, err := decodeRecord(b)
	if err != nil {
		return err
	}
	if rec.Name != name {
		return fmt.Errorf("function.json names %q: %w", rec.Name, errdefs.ErrCorrupt)
	}
	wasm, err := w.readModule(rec)
	if err != nil {
		return err
	}
	mod, err := w.engines.compile(ctx, rec.Config.Engine, wasm)
	if err != nil {
		return err
	}
	f, err := w.newFunction(rec, mod)
	if err != nil {
		return err
	}
	if rec.Snapshot != "" {
		// Falls back to the store's copy.
		snap, err := w.openSnapshot(ctx, f, rec.Snapshot)
		if err != nil {
			w.log.Warn("snapshot unusable; instances boot cold until redeploy", "function", name, "err", err)
		} else if err := mod.PrepareRestore(ctx, snap.Meta.State.Pages); err != nil {
			w.log.Warn("restore module failed to compile; instances boot cold", "function", name, "err", err)
		} else {
			f.ckpt.snap = snap
		}
	}
	f.ckpt.loadPolicy(func(id string) (*snapshot.Snapshot, error) {
		return w.openSnapshot(w.ctx, f, id) // falls back to the store's copy
	})
	w.mu.Lock()
	w.fns[name] = f
	w.mu.Unlock()
	return nil
}

// maxRecordBytes bounds function.json: a record is a few hundred bytes,
// and a damaged or hostile file must not make the worker allocate its
// size.
const maxRecordBytes = 64 << 10

// readRecordFile reads a function.json of at most maxRecordBytes.
func readRecordFile(path string) ([]byte, error) {
	return atomicfile.ReadFile(path, maxRecordBytes)
}

// decodeRecord parses and checks a function.json: a name that is a valid
// path element, a module hash that is one, a snapshot id that names a
// directory entry and nothing above it, and a valid configuration.
func decodeRecord(b []byte) (record, error) {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("function.json: %v: %w", err, errdefs.ErrCorrupt)
	}
	if err := ValidName(rec.Name); err != nil {
		return rec, fmt.Errorf("function.json: %v: %w", err, errdefs.ErrCorrupt)
	}
	if !validSHA(rec.ModuleSHA) {
		return rec, fmt.Errorf("function.json: module hash %q: %w", rec.ModuleSHA, errdefs.ErrCorrupt)
	}
	if rec.Snapshot != "" && !snapIDRE.MatchString(rec.Snapshot) {
		return rec, fmt.Errorf("function.json: snapshot id %q: %w", rec.Snapshot, errdefs.ErrCorrupt)
	}
	if rec.ModuleSize < 0 {
		return rec, fmt.Errorf("function.json: module size %d: %w", rec.ModuleSize, errdefs.ErrCorrupt)
	}
	if err := rec.Config.WithDefaults().Validate(); err != nil {
		return rec, fmt.Errorf("function.json: %v: %w", err, errdefs.ErrCorrupt)
	}
	return rec, nil
}

// snapIDRE matches the snapshot ids newID makes (and no path).
var snapIDRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}-[0-9a-f]{12}$`)

// validSHA reports whether s is a hex SHA-256, safe as a file name.
func validSHA(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// readModule returns the module of rec, checked against its hash: from
// modules/SHA.wasm or, in a data directory of the layout before
// content-addressed modules, from functions/NAME/module.wasm, which it
// then moves to modules/ (a migration a crash can interrupt at any point:
// the record is the same in both layouts).
func (w *Worker) readModule(rec record) ([]byte, error) {
	wasm, err := os.ReadFile(w.modulePath(rec.ModuleSHA))
	if err == nil && sha256Hex(wasm) == rec.ModuleSHA {
		return wasm, nil
	}
	if err == nil {
		err = fmt.Errorf("module %s does not match its hash: %w", w.modulePath(rec.ModuleSHA), errdefs.ErrCorrupt)
	}
	legacy := filepath.Join(w.fnDir(rec.Name), legacyModuleFile)
	old, lerr := os.ReadFile(legacy)
	if lerr != nil {
		return nil, err
	}
	if sha256Hex(old) != rec.ModuleSHA {
		// A deploy of the old layout killed between its two renames:
		// the module is not the one the record describes, and running it
		// would pair it with the wrong snapshot and configuration.
		return nil, fmt.Errorf("%s is not the module function.json names (%.12s): %w", legacy, rec.ModuleSHA, errdefs.ErrCorrupt)
	}
	if werr := w.writeModule(rec.ModuleSHA, old); werr != nil {
		w.log.Warn("moving the module to modules/ failed; kept in place", "function", rec.Name, "err", werr)
		return old, nil
	}
	if rerr := os.Remove(legacy); rerr == nil {
		_ = atomicfile.SyncDir(w.fnDir(rec.Name))
	}
	w.log.Info("migrated module to the content-addressed layout", "function", rec.Name, "module", rec.ModuleSHA)
	return old, nil
}

// cleanStart removes what interrupted writes left: temporary files and
// snapshot directories, and function directories without a record (a
// first deploy that never committed, or a deletion that did).
func (w *Worker) cleanStart() {
	removeTemps(filepath.Join(w.dir, modulesDir))
	fns, _ := os.ReadDir(filepath.Join(w.dir, "functions"))
	for _, e := range fns {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		removeTemps(w.fnDir(e.Name()))
		if _, err := os.Stat(w.recordPath(e.Name())); errors.Is(err, os.ErrNotExist) {
			w.log.Info("removing a function directory without a record (interrupted deploy or delete)", "function", e.Name())
			_ = os.RemoveAll(w.fnDir(e.Name()))
		}
	}
	snaps, _ := os.ReadDir(filepath.Join(w.dir, "snapshots"))
	for _, e := range snaps {
		if e.IsDir() {
			removeTemps(w.snapDir(e.Name()))
			// Inside each snapshot: a working set write (atomicfile)
			// the crash interrupted.
			ids, _ := os.ReadDir(w.snapDir(e.Name()))
			for _, id := range ids {
				if id.IsDir() {
					removeTemps(filepath.Join(w.snapDir(e.Name()), id.Name()))
				}
			}
		}
	}
}

// removeTemps removes the temporary files (atomicfile.TempPattern) and
// directories (snapshot.Write) in dir.
func removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.Contains(e.Name(), ".tmp-") {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// collectSnapshots removes, at start, the snapshot directories no record
// or policy pool references: those of deploys and checkpoints killed
// before their commit, and of deploys killed after theirs but before
// removing what they replaced. Functions whose record exists but did not
// load keep theirs.
func (w *Worker) collectSnapshots() {
	names, _ := os.ReadDir(filepath.Join(w.dir, "snapshots"))
	for _, n := range names {
		name := n.Name()
		w.mu.Lock()
		f := w.fns[name]
		w.mu.Unlock()
		keep := map[string]bool{}
		if f == nil {
			if _, err := os.Stat(w.recordPath(name)); err == nil {
				continue
			}
		} else {
			keep[f.rec.Snapshot] = true
			for _, id := range f.ckpt.snapshotIDs() {
				keep[id] = true
			}
		}
		var drop []string
		for _, id := range w.snapshotDirs(name) {
			if !keep[id] {
				drop = append(drop, id)
			}
		}
		if len(drop) == 0 {
			continue
		}
		w.log.Info("removing snapshots no record references (interrupted deploy or checkpoint)", "function", name, "snapshots", drop)
		w.snapStore.drop(name, drop)
		for _, id := range drop {
			_ = os.RemoveAll(filepath.Join(w.snapDir(name), id))
		}
		if f == nil {
			_ = os.Remove(w.snapDir(name))
		}
	}
}

// Deploy stores, compiles and snapshots a function, replacing any function
// of that name. A malformed module fails with errdefs.ErrInvalid and changes
// nothing.
//
// The deploy commits with one rename: the snapshot directory and the
// content-addressed module file (modules/SHA.wasm) are written first, then
// function.json, which names both, replaces the old record and its
// directory is synced. A crash before the rename leaves the old function
// (what the new deploy wrote is collected at the next start); after it,
// the new one. Deploys and deletions of one name are serialised.
func (w *Worker) Deploy(ctx context.Context, name string, wasm []byte, cfg Config) (*Info, error) {
	return w.deploy(ctx, name, wasm, cfg, "")
}

// DeployStored deploys a function whose snapshot another worker took and
// published to the shared store: snapshot snapID of the same module. It
// compiles the module and commits a record naming that snapshot without
// booting an instance; restores read the snapshot from the store (and the
// store's caches) as they would a local snapshot that was lost. So a
// cluster snapshots a function once, as AWS Lambda does, and every worker
// restores the same snapshot. It fails with errdefs.ErrNotFound while the
// store does not have the snapshot (not published yet, or never) and with
// errdefs.ErrUnavailable when the worker has no store; the caller then
// deploys with Deploy. A function whose configuration restores nothing
// (cold) is deployed with Deploy.
func (w *Worker) DeployStored(ctx context.Context, name string, wasm []byte, cfg Config, snapID string) (*Info, error) {
	if snapID == "" || cfg.WithDefaults().mode() == restore.Cold {
		return w.Deploy(ctx, name, wasm, cfg)
	}
	if _, none := w.snapStore.(noStore); none {
		return nil, fmt.Errorf("deploy %s from a stored snapshot: no snapshot store: %w", name, errdefs.ErrUnavailable)
	}
	if !snapIDRE.MatchString(snapID) {
		return nil, fmt.Errorf("snapshot id %q: %w", snapID, errdefs.ErrInvalid)
	}
	return w.deploy(ctx, name, wasm, cfg, snapID)
}

// deploy is Deploy, or DeployStored when stored names the stored snapshot
// to use instead of booting one.
func (w *Worker) deploy(ctx context.Context, name string, wasm []byte, cfg Config, stored string) (_ *Info, err error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	unlock, err := w.lockName(ctx, name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := w.checkFits(name, cfg); err != nil {
		return nil, err
	}
	progress := deployProgress(ctx)
	progress(api.StageCompile)
	mod, err := w.engines.compile(ctx, cfg.Engine, wasm)
	if err != nil {
		return nil, err
	}
	// Until the commit, a failure undoes what the deploy made: the boot
	// instance (or its memory reservation), the module, the snapshot.
	var (
		res  *reservation
		inst engine.Instance
		snap *snapshot.Snapshot
	)
	defer func() {
		if err == nil {
			return
		}
		if inst != nil {
			inst.Close(ctx) // its region takes the reservation with it
		} else if res != nil {
			res.release()
		}
		_ = mod.Close(ctx)
		if snap != nil {
			w.snapStore.drop(name, []string{snap.Meta.ID})
			_ = os.RemoveAll(snap.Dir)
		}
	}()
	rec := record{Name: name, Config: cfg, ModuleSHA: sha256Hex(wasm), ModuleSize: len(wasm), Deployed: time.Now().UTC()}
	f, err := w.newFunction(rec, mod)
	if err != nil {
		return nil, err
	}

	if stored != "" {
		// No boot: the snapshot is the origin's, read from the store. It is
		// not this deploy's to remove if the deploy fails.
		sn, err := w.openSnapshot(ctx, f, stored)
		if err != nil {
			return nil, fmt.Errorf("deploy %s from stored snapshot %s: %w", name, stored, err)
		}
		if err := mod.PrepareRestore(ctx, sn.Meta.State.Pages); err != nil {
			return nil, fmt.Errorf("deploy %s: %w", name, err)
		}
		f.ckpt.snap = sn
		f.rec.Snapshot = stored
	} else {
		// Boot one instance now: it proves the module initialises,
		// provides the snapshot, and then serves as the first warm
		// instance.
		progress(api.StageBoot)
		if res, err = w.reserveMemory(ctx, f); err != nil {
			return nil, fmt.Errorf("deploy %s: %w", name, err)
		}
		if inst, _, err = mod.Boot(ctx, f.instanceConfig()); err != nil {
			return nil, fmt.Errorf("deploy %s: boot: %w", name, err)
		}
		res.attach(inst)
		if cfg.mode() != restore.Cold {
			progress(api.StageSnapshot)
			st, mem, err := engine.CaptureDeploy(ctx, inst)
			if err != nil {
				return nil, fmt.Errorf("deploy %s: %w", name, err)
			}
			if snap, err = w.writeSnapshot(&f.rec, st, mem, 0); err != nil {
				return nil, fmt.Errorf("deploy %s: %w", name, err)
			}
			crashpoint.Hit(crashpoint.DeploySnapshotWritten)
			if err := mod.PrepareRestore(ctx, snap.Meta.State.Pages); err != nil {
				return nil, fmt.Errorf("deploy %s: %w", name, err)
			}
			f.ckpt.snap = snap
			f.rec.Snapshot = filepath.Base(snap.Dir)
		}
	}
	// What the record replaces, listed before f can checkpoint (its
	// checkpoints are new directories this list does not hold).
	stale := w.snapshotDirs(name)
	progress(api.StageCommit)
	if err := w.commit(f.rec, wasm); err != nil {
		return nil, fmt.Errorf("deploy %s: %w", name, err)
	}
	crashpoint.Hit(crashpoint.DeployCommitted)
	// The old function's policy state and pool are not the new one's
	// (loadPolicy would ignore them anyway: they name another deploy).
	_ = os.Remove(filepath.Join(w.fnDir(name), policyFile))
	if inst != nil {
		f.adopt(inst)
	}

	if stored != "" {
		// Before f is published: whoever sees the function then also
		// finds the copy in its background (WaitCheckpoints).
		w.localise(f)
	}
	w.mu.Lock()
	old := w.fns[name]
	w.fns[name] = f
	w.mu.Unlock()
	if old != nil {
		old.shutdown(ctx)
		old.background.Wait()
		stale = append(append(stale, old.rec.Snapshot), old.ckpt.snapshotIDs()...)
	}
	stale = without(stale, f.rec.Snapshot)
	if len(stale) > 0 {
		w.snapStore.drop(name, stale)
		for _, id := range stale {
			_ = os.RemoveAll(filepath.Join(w.snapDir(name), id))
		}
	}
	// A module of the old layout, now in modules/ if still in use.
	_ = os.Remove(filepath.Join(w.fnDir(name), legacyModuleFile))
	w.collectModules()
	crashpoint.Hit(crashpoint.DeployCleaned)
	w.log.Info("deployed", "function", name, "module_bytes", len(wasm), "snapshot", f.rec.Snapshot)
	info := f.info()
	return &info, nil
}

// lockName serialises deploys and deletions of one function name; the
// returned function unlocks. Waiting ends with ctx.
func (w *Worker) lockName(ctx context.Context, name string) (func(), error) {
	for {
		w.mu.Lock()
		busy, ok := w.deploying[name]
		if !ok {
			ch := make(chan struct{})
			w.deploying[name] = ch
			w.mu.Unlock()
			return func() {
				w.mu.Lock()
				delete(w.deploying, name)
				w.mu.Unlock()
				close(ch)
			}, nil
		}
		w.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another deploy of %s: %w", name, ctx.Err())
		}
	}
}

// writeSnapshot stores a captured instance as a new snapshot of the
// function of rec, taken after request number request, and publishes it.
func (w *Worker) writeSnapshot(rec *record, st *engine.State, mem []byte, request int) (*snapshot.Snapshot, error) {
	id := newID()
	meta := snapshot.Meta{ID: id, Function: rec.Name, ModuleSHA: rec.ModuleSHA, Created: time.Now().UTC(), State: *st, Request: request}
	if err := os.MkdirAll(w.snapDir(rec.Name), snapshot.DirMode); err != nil {
		return nil, err
	}
	snap, err := snapshot.Write(filepath.Join(w.snapDir(rec.Name), id), meta, mem)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	w.snapStore.publish(rec.Name, snap)
	return snap, nil
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// Layout of the registry in the data directory.
const (
	// modulesDir holds every deployed module once, as SHA256.wasm.
	modulesDir = "modules"
	// recordFile is a function's registry entry, in functions/NAME/.
	recordFile = "function.json"
	// legacyModuleFile is where data directories written before
	// content-addressed modules kept a function's module.
	legacyModuleFile = "module.wasm"
)

func (w *Worker) recordPath(name string) string { return filepath.Join(w.fnDir(name), recordFile) }
func (w *Worker) modulePath(sha string) string {
	return filepath.Join(w.dir, modulesDir, sha+".wasm")
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// commit makes rec (whose snapshot is already written) the function's
// registry entry: its module goes to modules/SHA.wasm, then one rename of
// function.json commits, then the directory is synced.
func (w *Worker) commit(rec record, wasm []byte) error {
	w.modMu.Lock()
	w.pendingMods[rec.ModuleSHA]++
	w.modMu.Unlock()
	defer func() {
		w.modMu.Lock()
		if w.pendingMods[rec.ModuleSHA]--; w.pendingMods[rec.ModuleSHA] <= 0 {
			delete(w.pendingMods, rec.ModuleSHA)
		}
		w.modMu.Unlock()
	}()
	if err := w.writeModule(rec.ModuleSHA, wasm); err != nil {
		return fmt.Errorf("persist module: %w", err)
	}
	crashpoint.Hit(crashpoint.DeployModuleWritten)
	if err := os.MkdirAll(w.fnDir(rec.Name), 0o700); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	err = writeAtomic(w.recordPath(rec.Name), b, func() { crashpoint.Hit(crashpoint.DeployRecordWritten) })
	if errors.Is(err, atomicfile.ErrDirNotSynced) {
		// The rename is done: the deploy is committed, and undoing it now
		// would remove the snapshot the record names.
		w.log.Warn("registry directory sync failed; the deploy may not survive a power loss", "function", rec.Name, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("persist registry: %w", err)
	}
	return nil
}

// writeModule stores wasm as modules/SHA.wasm unless an intact copy is
// there already (modules are shared by the functions deploying them).
func (w *Worker) writeModule(sha string, wasm []byte) error {
	path := w.modulePath(sha)
	if b, err := os.ReadFile(path); err == nil && sha256Hex(b) == sha {
		return nil
	}
	return writeAtomic(path, wasm, nil)
}

// collectModules removes the modules no function.json references and no
// deploy in progress is about to.
func (w *Worker) collectModules() {
	w.modMu.Lock()
	defer w.modMu.Unlock()
	used := map[string]bool{}
	for sha := range w.pendingMods {
		used[sha] = true
	}
	fns, err := os.ReadDir(filepath.Join(w.dir, "functions"))
	if err != nil {
		return
	}
	for _, e := range fns {
		b, err := readRecordFile(w.recordPath(e.Name()))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return // unsure what it references: keep everything
			}
			continue
		}
		rec, err := decodeRecord(b)
		if err != nil {
			return
		}
		used[rec.ModuleSHA] = true
	}
	mods, _ := os.ReadDir(filepath.Join(w.dir, modulesDir))
	for _, m := range mods {
		sha, ok := strings.CutSuffix(m.Name(), ".wasm")
		if ok && validSHA(sha) && !used[sha] {
			if err := os.Remove(filepath.Join(w.dir, modulesDir, m.Name())); err == nil {
				w.log.Debug("removed unreferenced module", "module", sha)
			}
		}
	}
}

// writeAtomic replaces path with b (atomicfile: unique temporary file,
// fsync, rename, directory fsync). afterRename, if set, runs between the
// rename and the directory sync (a crash point). Files are 0600: they hold
// what tenants deployed.
func writeAtomic(path string, b []byte, afterRename func()) error {
	f, err := atomicfile.Create(filepath.Dir(path), atomicfile.TempPattern(path), 0o600)
	if err != nil {
		return err
	}
	defer f.Abort()
	f.AfterRename = afterRename
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Commit(path)
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

// without returns ids with every copy of drop and of "" removed, and
// duplicates collapsed.
func without(ids []string, drop string) []string {
	seen := map[string]bool{drop: true, "": true}
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
	fns := w.functions()
	out := make([]Info, 0, len(fns))
	for _, f := range fns {
		out = append(out, f.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Delete removes a function, its instances and its snapshots. Removing
// function.json commits the deletion; a crash after it leaves files the
// next start removes.
func (w *Worker) Delete(ctx context.Context, name string) error {
	unlock, err := w.lockName(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	w.mu.Lock()
	f, ok := w.fns[name]
	delete(w.fns, name)
	w.mu.Unlock()
	if !ok {
		return fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	f.shutdown(ctx)
	f.background.Wait()
	// The stored copies go too, local or not.
	w.snapStore.drop(name, without(append(append(w.snapshotDirs(name), f.rec.Snapshot), f.ckpt.snapshotIDs()...), ""))
	if err := os.Remove(w.recordPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	_ = atomicfile.SyncDir(w.fnDir(name))
	err = errors.Join(os.RemoveAll(w.fnDir(name)), os.RemoveAll(w.snapDir(name)))
	w.collectModules()
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// functions returns the deployed functions, in no order.
func (w *Worker) functions() []*function {
	w.mu.Lock()
	defer w.mu.Unlock()
	fns := make([]*function, 0, len(w.fns))
	for _, f := range w.fns {
		fns = append(fns, f)
	}
	return fns
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
// closed too, and so are the spare regions being prepared (a benchmark's
// next trial then runs alone).
func (w *Worker) Evict(ctx context.Context, name string) error {
	f, err := w.lookup(name)
	if err != nil {
		return err
	}
	f.pool.awaitSettled()
	w.restorer.WaitSpares()
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
		w.late.runOverdue(time.Now())
		for _, f := range w.functions() {
			f.reap(context.Background(), time.Now(), false)
		}
	}
}
