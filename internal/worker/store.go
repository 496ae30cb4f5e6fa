package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/crashpoint"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// Where a restore read its snapshot (Timing.Source).
const (
	// SourceLocal is the function's snapshot directory in the data dir.
	SourceLocal = "local"
	// SourceStore is the chunk store (internal/store), used when the local
	// directory is missing or unusable.
	SourceStore = "store"
)

// Directories under the data directory used with a store.
const (
	// storeCacheDir is the store's disk cache and upload queue when the
	// configuration names none: a worker always keeps a local tier, so
	// repeated restores of one snapshot do not go back to the remote.
	storeCacheDir = "store-cache"
	// storeImagesDir holds images materialised for mmap restores.
	storeImagesDir = "store-images"
)

// reopenAfter bounds how often a store snapshot opened without a working
// set is opened again by a restore that wants one: another worker (or this
// one, before its local copy went away) may have published it since.
const reopenAfter = 10 * time.Second

// workerStore is the worker's side of the snapshot store: every snapshot
// written locally is published there in the background, and a snapshot
// whose local directory is gone is restored from there.
//
// Publishing never runs on the request path: it copies files the worker
// already wrote, and the tiered backend under the store queues writes on
// local disk while the remote is down and uploads them when it returns
// (stack.Open sets the queue up), so a publish only fails on local
// trouble (the snapshot was deleted meanwhile, the disk is full).
type workerStore struct {
	// ctx and log are the worker's.
	ctx context.Context
	log *slog.Logger
	// snapDir is the worker's snapshot directory of a function.
	snapDir func(name string) string
	// keep, if set, vetoes dropping a stored snapshot that the cluster
	// still references (Options.KeepStored).
	keep func(name, id string) bool
	// holders, if set, names the workers likely to hold a function's
	// chunks (Options.Holders).
	holders func(name string) []string
	// published, if set, is told of every snapshot published with a
	// working set (Options.Published).
	published func(name, snapshotID string)

	h *stack.Handle
	// chunks makes the restore source of a store snapshot; the worker's
	// Restorer restores from it as from local files.
	chunks *restore.Store
	// publishes counts publishes by function and outcome (ok, failed).
	publishes *prometheus.CounterVec
	// deletes counts store snapshot deletions by outcome (ok, failed).
	deletes *prometheus.CounterVec
	// pulls counts stored snapshots copied to local disk, by outcome.
	pulls *prometheus.CounterVec
	// cached measures how much of each function's snapshot the disk
	// cache holds (cached.go); nil without a disk cache.
	cached *cachedState

	// pubMu serialises publishes and deletions (storedelete.go). A
	// publish reads the snapshot directory as it is when it runs, so with
	// publishes one at a time the last one of a snapshot carries its
	// newest state (with its working set) even if an earlier publish of
	// it was scheduled first.
	pubMu sync.Mutex
	pubs  sync.WaitGroup

	// deletesDir holds the queued deletions; the deleter goroutine runs
	// them when woken through delWake and retries them while any remain.
	deletesDir       string
	delWake, delStop chan struct{}
	delDone          chan struct{}

	mu     sync.Mutex
	closed bool
	// opened caches store snapshots by store id: opening reads the
	// manifest and metadata from the store, a few ms each time.
	opened map[string]openedSnap
	// adoptAsked holds when adoptWorkingSet last asked the store for a
	// snapshot's working set, by store id.
	adoptAsked map[string]time.Time
	// storeOnly marks snapshots whose local directory was unusable when
	// the worker loaded them: restores of those go straight to the store.
	storeOnly map[*snapshot.Snapshot]bool
	// dropped marks store ids the worker dropped: true while the deletion
	// is queued, false once it is done but publishes scheduled earlier
	// (counted in pending, by store id) have yet to run. Publishes of
	// dropped ids are skipped.
	dropped map[string]bool
	pending map[string]int
}

type openedSnap struct {
	sn *storesnap.Snapshot
	at time.Time
}

// openStore opens the store of cfg for a worker with data directory
// dataDir, and starts carrying out the store deletions queued before the
// last stop. The worker's pager, if any, serves lazy faults from the store.
// A remote that is unreachable does not fail it (stack.Open).
func (w *Worker) openStore(ctx context.Context, cfg stack.Config, dataDir string, reg *prometheus.Registry) (*workerStore, error) {
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(dataDir, storeCacheDir)
	}
	deletesDir := filepath.Join(dataDir, storeDeletesDir)
	if err := os.MkdirAll(deletesDir, 0o700); err != nil {
		return nil, fmt.Errorf("worker: open store: %w", err)
	}
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("worker: open store: %w", err)
	}
	s := &workerStore{
		ctx:        w.ctx,
		log:        w.log,
		snapDir:    w.snapDir,
		h:          h,
		chunks:     &restore.Store{Config: cfg, CacheDir: filepath.Join(dataDir, storeImagesDir)},
		opened:     map[string]openedSnap{},
		adoptAsked: map[string]time.Time{},
		storeOnly:  map[*snapshot.Snapshot]bool{},
		dropped:    map[string]bool{},
		pending:    map[string]int{},
		deletesDir: deletesDir,
		delWake:    make(chan struct{}, 1),
		delStop:    make(chan struct{}),
		delDone:    make(chan struct{}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thaw_store_publishes_total", Help: "Snapshots published to the snapshot store, by outcome (ok, failed).",
		}, []string{"function", "outcome"}),
		deletes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thaw_store_deletes_total", Help: "Store snapshots deleted (ok) or whose deletion could not be queued (failed).",
		}, []string{"outcome"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thaw_store_pulls_total", Help: "Snapshots deployed from the store and copied to local disk, by outcome (ok, failed).",
		}, []string{"outcome"}),
	}
	// The pager child's reads (lazy restores) are its own store's and not
	// counted here.
	for _, c := range []prometheus.Collector{s.publishes, s.deletes, s.pulls, newTierCollector(h.Store)} {
		if err := reg.Register(c); err != nil {
			_ = h.Close()
			return nil, fmt.Errorf("worker: store metrics: %w", err)
		}
	}
	pending, err := s.pendingDeletes()
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("worker: open store: %w", err)
	}
	for _, sid := range pending {
		s.dropped[sid] = true
	}
	go s.deleter(w.ctx)
	s.delWake <- struct{}{}
	if s.cached = newCachedState(h.Cache); s.cached != nil {
		go s.cached.run(w.ctx, s, w.functions)
	}
	return s, nil
}

// close waits for running publishes, stops the deleter and closes the
// store; writes and deletions still queued for an unreachable remote stay
// on disk for the next start.
func (s *workerStore) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.pubs.Wait()
	close(s.delStop)
	<-s.delDone
	s.cached.close()
	_ = s.h.Close()
}

// publish publishes snap, a snapshot of function name, to the store in
// the background.
func (s *workerStore) publish(name string, snap *snapshot.Snapshot) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	id := storesnap.ID(name, snap.Meta.ID)
	s.pubs.Add(1)
	s.pending[id]++
	s.mu.Unlock()
	go func() {
		defer s.pubs.Done()
		defer s.publishDone(id)
		s.pubMu.Lock()
		defer s.pubMu.Unlock()
		s.mu.Lock()
		_, dropped := s.dropped[id]
		s.mu.Unlock()
		if dropped {
			return // deleted or about to be (storedelete.go)
		}
		t0 := time.Now()
		crashpoint.Hit(crashpoint.StorePublishStart)
		res, err := storesnap.Publish(s.ctx, s.h.Store, id, snap)
		if err != nil {
			s.mu.Lock()
			_, dropped := s.dropped[id]
			s.mu.Unlock()
			if dropped {
				// Removed while it was being read: not a failure, and the
				// deletion, queued behind this publish, removes whatever
				// it wrote.
				s.log.Debug("snapshot dropped while being published", "function", name, "snapshot", id, "err", err)
				return
			}
			s.publishes.WithLabelValues(name, "failed").Inc()
			s.log.Warn("publishing snapshot to the store failed", "function", name, "snapshot", id, "err", err)
			return
		}
		crashpoint.Hit(crashpoint.StorePublished)
		// What this worker opened of the stored snapshot before is stale:
		// a publish after recording adds the working set, which an open
		// that found none would otherwise hide until reopenAfter.
		s.mu.Lock()
		delete(s.opened, id)
		s.mu.Unlock()
		s.publishes.WithLabelValues(name, "ok").Inc()
		s.cached.poke() // the publish filled the disk cache
		s.log.Debug("published snapshot", "function", name, "snapshot", id, "chunks", res.Chunks,
			"new_chunks", res.NewChunks, "uploaded_bytes", res.UploadedBytes, "took", time.Since(t0))
		if _, err := snap.WorkingSet(); err == nil && s.published != nil {
			s.published(name, snap.Meta.ID)
		}
	}()
}

// AdoptWorkingSet has this worker's local copy of snapshot snapshotID of
// function name adopt the working set stored with it, if the copy has
// none (workerStore.adoptWorkingSet), and reports whether it adopted one.
// A cluster worker calls it when a peer announces that it published the
// snapshot with a working set (Options.Published), so that the worker's
// next restore of the function is a bulk one without a store read on its
// path. A copy that has a working set already, a snapshot the worker
// does not hold locally (its restores read the store's copy, working set
// included) and a worker without a store adopt nothing.
func (w *Worker) AdoptWorkingSet(ctx context.Context, name, snapshotID string) bool {
	f, err := w.lookup(name)
	if err != nil {
		return false
	}
	_, snaps := f.ckpt.candidates()
	for _, snap := range snaps {
		if snap.Meta.ID != snapshotID {
			continue
		}
		if _, err := os.Stat(snap.Path(snapshot.ImageFile)); err != nil {
			return false
		}
		if _, err := snap.WorkingSet(); !errors.Is(err, errdefs.ErrNotFound) {
			return false
		}
		return w.snapStore.adoptWorkingSet(ctx, f, snap, true)
	}
	return false
}

// WaitPublishes waits until every snapshot scheduled for publishing so far
// has been published (or has failed to be); a no-op without a store.
// Tests and benchmarks use it before they depend on the store's contents.
func (w *Worker) WaitPublishes() { w.snapStore.waitPublishes() }

func (s *workerStore) waitPublishes() { s.pubs.Wait() }

// open returns store snapshot id of function f, opened once and cached. A
// cached snapshot without a working set is opened again (at most every
// reopenAfter) when wantWS is set, in case one was published since.
func (s *workerStore) open(ctx context.Context, f *function, snapID string, wantWS bool) (*storesnap.Snapshot, error) {
	id := storesnap.ID(f.rec.Name, snapID)
	s.mu.Lock()
	o, ok := s.opened[id]
	s.mu.Unlock()
	if ok && (o.sn.WS != nil || !wantWS || time.Since(o.at) < reopenAfter) {
		return o.sn, nil
	}
	sn, err := s.load(ctx, f, snapID, ok)
	if err != nil && ok {
		// The cached copy still works for everything but the working set.
		return o.sn, nil
	}
	return sn, err
}

// load opens store snapshot snapID of f and caches it for open. With
// latest, the manifest is read from the origin store, past the caches: a
// snapshot published again with its working set replaces its manifest,
// which a cache may hold from before.
func (s *workerStore) load(ctx context.Context, f *function, snapID string, latest bool) (*storesnap.Snapshot, error) {
	id := storesnap.ID(f.rec.Name, snapID)
	openSnapshot := storesnap.OpenSnapshot
	if latest {
		openSnapshot = storesnap.OpenLatestSnapshot
	}
	sn, err := openSnapshot(ctx, s.h.Store, id)
	if err != nil {
		return nil, fmt.Errorf("open store snapshot %s: %w", id, err)
	}
	// The snapshot must be of this very module: its state indexes the
	// module's globals and memory layout.
	if sn.Meta.ID != snapID || sn.Meta.ModuleSHA != f.rec.ModuleSHA {
		return nil, fmt.Errorf("store snapshot %s is snapshot %s of module %.12s, want module %.12s: %w",
			id, sn.Meta.ID, sn.Meta.ModuleSHA, f.rec.ModuleSHA, errdefs.ErrCorrupt)
	}
	s.mu.Lock()
	s.opened[id] = openedSnap{sn: sn, at: time.Now()}
	s.mu.Unlock()
	return sn, nil
}

// adoptTimeout bounds the store read of adoptWorkingSet when it runs on a
// restore's start: a healthy store (its disk cache, a peer) answers in
// milliseconds, and a dead one must not hold the request. A notified
// adoption runs in the background and may wait longer for the remote.
const (
	adoptTimeout         = 200 * time.Millisecond
	adoptNotifiedTimeout = 10 * time.Second
)

// adoptWorkingSet gives local, a local snapshot of f without a working
// set, the one published with the stored snapshot of the same id, if the
// store has one. A cluster follower copies a snapshot when the deploy
// reaches it, before any worker has recorded a working set; the worker
// that records one publishes the snapshot again with it, and without this
// every follower would record its own, with a slow lazy first restore
// each. The working set is written from local's own image
// (snapshot.WriteWorkingSet checks every page against pages.crc), pages
// in ascending order. A restore asks the store at most every reopenAfter
// per snapshot, whatever it answered; a notified adoption (a peer
// announced that it published one) asks at once, and off the request
// path, so that the restore after it finds the working set in place.
func (s *workerStore) adoptWorkingSet(ctx context.Context, f *function, local *snapshot.Snapshot, notified bool) bool {
	id := storesnap.ID(f.rec.Name, local.Meta.ID)
	s.mu.Lock()
	if last, ok := s.adoptAsked[id]; ok && time.Since(last) < reopenAfter && !notified {
		s.mu.Unlock()
		return false
	}
	s.adoptAsked[id] = time.Now()
	o, ok := s.opened[id]
	s.mu.Unlock()
	if ok && o.sn.WS != nil {
		return s.adopt(f, local, o.sn.WS)
	}
	timeout := adoptTimeout
	if notified {
		timeout = adoptNotifiedTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sn, err := s.load(ctx, f, local.Meta.ID, true)
	if err != nil || sn.WS == nil {
		return false
	}
	return s.adopt(f, local, sn.WS)
}

// adopt writes ws, the stored working set of local's snapshot, beside
// local's image, copied from that image (snapshot.ExtendWorkingSet with no
// pages added).
func (s *workerStore) adopt(f *function, local *snapshot.Snapshot, ws *snapshot.WorkingSet) bool {
	if _, err := local.ExtendWorkingSet(ws, nil); err != nil {
		s.log.Warn("adopting the stored working set failed; recording one", "function", f.rec.Name, "snapshot", local.Meta.ID, "err", err)
		return false
	}
	s.log.Debug("adopted the stored working set", "function", f.rec.Name, "snapshot", local.Meta.ID, "pages", ws.Pages)
	return true
}

// openSnapshot opens snapshot id of f from its local directory or, when
// that fails and the worker has a store, from the store. A snapshot from
// the store is returned as a snapshot.Snapshot carrying the stored
// metadata and the (missing) local path; restores of it go to the store.
func (w *Worker) openSnapshot(ctx context.Context, f *function, id string) (*snapshot.Snapshot, error) {
	dir := filepath.Join(w.snapDir(f.rec.Name), id)
	snap, err := snapshot.Open(dir)
	if err == nil && (snap.Meta.ModuleSHA != f.rec.ModuleSHA || snap.Meta.ID != id) {
		// Its state indexes another module's globals and memory layout:
		// restoring it would run this code over another's memory.
		err = fmt.Errorf("snapshot %s is snapshot %s of module %.12s, not of the function's module %.12s: %w",
			id, snap.Meta.ID, snap.Meta.ModuleSHA, f.rec.ModuleSHA, errdefs.ErrCorrupt)
		snap = nil
		w.metrics.snapshotsDiscarded.WithLabelValues(f.rec.Name, "module_mismatch").Inc()
		w.log.Warn("discarding a snapshot of another module", "function", f.rec.Name, "err", err)
		_ = os.RemoveAll(dir)
	}
	if err == nil {
		return snap, nil
	}
	return w.snapStore.openStored(ctx, f, id, dir, err)
}

// openStored opens snapshot id of f from the store, its local directory
// dir being unusable (localErr), as a snapshot.Snapshot with the stored
// metadata and the missing local path: restores of it go to the store.
func (s *workerStore) openStored(ctx context.Context, f *function, id, dir string, localErr error) (*snapshot.Snapshot, error) {
	sn, err := s.open(ctx, f, id, false)
	if err != nil {
		return nil, fmt.Errorf("local copy: %v; %w", localErr, err)
	}
	s.log.Info("no usable local copy of the snapshot; restores read it from the store", "function", f.rec.Name, "snapshot", id, "err", localErr)
	snap := &snapshot.Snapshot{Dir: dir, Meta: sn.Meta}
	s.mu.Lock()
	s.storeOnly[snap] = true
	s.mu.Unlock()
	return snap, nil
}

// pullTimeout bounds copying a stored snapshot to local disk.
const pullTimeout = 10 * time.Minute

// localise copies the snapshot f was deployed with from the store
// (DeployStored) to local disk in the background, then has f restore
// from the local copy: local restores are the fast ones (mmap, lazy and
// REAP from a file, no chunk fetches), placement counts the snapshot as on
// this worker's disk, and a worker cut off from the store (a partition)
// keeps serving the function. Until the copy is whole, restores read the
// store. A failed copy is logged and counted; restores go on reading the
// store.
func (w *Worker) localise(f *function) {
	f.ckpt.mu.Lock()
	snap := f.ckpt.snap
	f.ckpt.mu.Unlock()
	if snap == nil {
		return
	}
	f.background.Add(1)
	go func() {
		defer f.background.Done()
		ctx, cancel := context.WithTimeout(w.ctx, pullTimeout)
		defer cancel()
		t0 := time.Now()
		local, err := w.snapStore.pull(ctx, f, snap)
		if err != nil && w.ctx.Err() != nil {
			return // the worker is closing
		}
		if err != nil {
			w.log.Warn("copying the stored snapshot to local disk failed; restores read the store", "function", f.rec.Name, "snapshot", snap.Meta.ID, "err", err)
			return
		}
		f.ckpt.mu.Lock()
		swapped := !f.ckpt.closed && f.ckpt.snap == snap
		if swapped {
			f.ckpt.snap = local
		}
		f.ckpt.mu.Unlock()
		if !swapped {
			// Redeployed or deleted meanwhile: the copy is nobody's,
			// unless the function now deployed uses the same snapshot.
			if cur, err := w.lookup(f.rec.Name); err != nil || cur.rec.Snapshot != snap.Meta.ID {
				_ = os.RemoveAll(local.Dir)
			}
			return
		}
		w.log.Info("stored snapshot copied to local disk", "function", f.rec.Name, "snapshot", snap.Meta.ID, "took", time.Since(t0).Round(time.Millisecond))
	}()
}

// pull implements snapshotStore: the store copy of snap (working set
// included, if one was published) is written to snap.Dir, the chunks
// asked of the peers that hold them first.
func (s *workerStore) pull(ctx context.Context, f *function, snap *snapshot.Snapshot) (*snapshot.Snapshot, error) {
	if s.holders != nil {
		ctx = store.WithHolders(ctx, s.holders(f.rec.Name))
	}
	sn, err := s.open(ctx, f, snap.Meta.ID, true)
	if err == nil {
		var local *snapshot.Snapshot
		local, _, err = sn.Pull(ctx, snap.Dir, s.chunks.FetchConcurrency())
		if errors.Is(err, errdefs.ErrConflict) {
			// A copy made for an earlier deploy of the same snapshot.
			if local, err = snapshot.Open(snap.Dir); err == nil && local.Meta.ID != snap.Meta.ID {
				err = fmt.Errorf("%s holds snapshot %s: %w", snap.Dir, local.Meta.ID, errdefs.ErrCorrupt)
			}
		}
		if err == nil {
			s.pulls.WithLabelValues("ok").Inc()
			s.mu.Lock()
			delete(s.storeOnly, snap)
			s.mu.Unlock()
			return local, nil
		}
	}
	s.pulls.WithLabelValues("failed").Inc()
	return nil, err
}

// restoreAny starts an instance of f from snap: from its local directory
// when that is there and restores, else from the store.
func (s *workerStore) restoreAny(ctx context.Context, f *function, snap *snapshot.Snapshot, mode restore.Mode, dropCache bool, t *Timing) (*instance, error) {
	s.mu.Lock()
	storeOnly := s.storeOnly[snap]
	s.mu.Unlock()
	var localErr error
	switch _, err := os.Stat(snap.Path(snapshot.ImageFile)); {
	case storeOnly:
		localErr = errors.New("no usable local copy at start")
	case err != nil:
		localErr = err
	default:
		inst, err := f.restore(ctx, snap, restore.Files(snap), mode, dropCache, t)
		if err == nil {
			return inst, nil
		}
		localErr = err
		s.log.Warn("local restore failed; trying the store", "function", f.rec.Name, "snapshot", snap.Meta.ID, "err", err)
	}
	inst, err := s.restoreFromStore(ctx, f, snap, mode, t)
	if err != nil {
		return nil, fmt.Errorf("restore from the store (local copy: %v): %w", localErr, err)
	}
	return inst, nil
}

// restoreFromStore starts an instance of f from the stored copy of snap,
// opened from the store (again, at most every reopenAfter, when a reap or
// bulk restore wants a working set it lacked), through f.restore like a
// local restore.
func (s *workerStore) restoreFromStore(ctx context.Context, f *function, snap *snapshot.Snapshot, mode restore.Mode, t *Timing) (*instance, error) {
	var holders []string
	if s.holders != nil {
		holders = s.holders(f.rec.Name)
		ctx = store.WithHolders(ctx, holders)
	}
	sn, err := s.open(ctx, f, snap.Meta.ID, mode.UsesWorkingSet())
	if err != nil {
		return nil, err
	}
	return f.restore(ctx, snap, s.chunks.SnapshotHeld(sn, holders), mode, false, t)
}

// StoreCache is the disk cache of the worker's snapshot store (nil
// without a store): what the worker serves to its peers' chunk tiers.
func (w *Worker) StoreCache() store.Backend {
	if s, ok := w.snapStore.(*workerStore); ok {
		return s.h.Cache
	}
	return nil
}

// tierCollector exports the store's per-tier read counters
// (store.TierStats): chunks and bytes each tier (mem, disk, peer, queue,
// remote) served to this process. The pager child's reads (lazy faults)
// are its own and not counted here.
type tierCollector struct {
	st                  *store.Store
	hits, bytes, misses *prometheus.Desc
}

func newTierCollector(st *store.Store) *tierCollector {
	l := []string{"tier"}
	return &tierCollector{st: st,
		hits:   prometheus.NewDesc("thaw_store_tier_hits_total", "Store objects read from each tier (mem, disk, peer, queue, remote), in the worker process.", l, nil),
		bytes:  prometheus.NewDesc("thaw_store_tier_bytes_total", "Bytes of store objects read from each tier, in the worker process.", l, nil),
		misses: prometheus.NewDesc("thaw_store_tier_misses_total", "Store object reads each cache tier could not answer, in the worker process.", l, nil),
	}
}

func (c *tierCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hits
	ch <- c.bytes
	ch <- c.misses
}

func (c *tierCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ts := range c.st.TierStats() {
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(ts.Hits), ts.Tier)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(ts.Bytes), ts.Tier)
		ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(ts.Misses), ts.Tier)
	}
}
