package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/policy"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// instance is a pooled engine instance with what the pool needs to know.
type instance struct {
	*engine.Instance
	mem    *restore.Memory // nil for booted instances
	mode   restore.Mode
	served int
	// recording is set on the instance whose first invocation records the
	// snapshot's working set.
	recording bool
	// snap is the snapshot the instance was restored from (nil if booted).
	snap *snapshot.Snapshot
	// startReq is the request number of the instance's first request;
	// checkpointAt the request after which the policy snapshots it.
	startReq, checkpointAt int
}

// function is one deployed function: its module, snapshot and pool. A
// redeploy replaces the whole function; the old one drains and closes.
type function struct {
	w   *Worker
	rec record
	mod *engine.Module

	// pool holds the function's instances, idle and in use.
	pool *pool[*instance]

	mu   sync.Mutex
	snap *snapshot.Snapshot // taken after initialisation (request 0)
	// extra are the policy's later snapshots, oldest first.
	extra []*snapshot.Snapshot
	// pol is the snapshot policy; polMu serialises calls into it.
	pol    policy.Policy
	polMu  sync.Mutex
	closed bool

	recording atomic.Bool
	// background counts work done off the requests' path: idle calls,
	// checkpoints and working-set writes.
	background sync.WaitGroup
	// ckptBufs keeps buffers checkpoints copied memory into (policy.go).
	ckptBufs buffers
	// pending are the request numbers of checkpoints being taken (f.mu).
	pending map[int]bool
}

func (w *Worker) newFunction(rec record, mod *engine.Module) (*function, error) {
	pol, err := newPolicy(rec.Config.WithDefaults())
	if err != nil {
		return nil, err
	}
	idle := w.metrics.instances.WithLabelValues(rec.Name, "idle")
	return &function{w: w, rec: rec, mod: mod, pol: pol,
		pool: newPool[*instance](rec.Name, rec.Config.MaxInstances, rec.Config.MaxQueue, idle)}, nil
}

func (f *function) instanceConfig() engine.InstanceConfig {
	return engine.InstanceConfig{MemoryLimit: uint64(f.rec.Config.MemoryMiB) << 20, Timeout: time.Duration(f.rec.Config.Timeout),
		InitTimeout: time.Duration(f.rec.Config.InitTimeout)}
}

func (f *function) info() Info {
	idle, total := f.pool.counts()
	f.mu.Lock()
	defer f.mu.Unlock()
	in := Info{Name: f.rec.Name, Config: f.rec.Config, ModuleSHA: f.rec.ModuleSHA, ModuleSize: f.rec.ModuleSize,
		Deployed: f.rec.Deployed, Idle: idle, Busy: total - idle, PoolSnapshots: len(f.extra), Policy: f.rec.Config.Policy}
	if f.snap != nil {
		si := &SnapshotInfo{ID: f.snap.Meta.ID, MemoryBytes: f.snap.Meta.ImageSize, DataBytes: f.snap.Meta.DataPages * snapshot.PageSize}
		if ws, err := f.snap.WorkingSet(); err == nil {
			si.WSBytes = ws.Bytes()
		}
		in.Snapshot = si
	}
	return in
}

// InvokeOptions steer one invocation; the zero value is a normal request.
type InvokeOptions struct {
	// Mode, when set, starts a fresh instance in that mode instead of
	// reusing a warm one (for experiments); restore.Warm insists on reuse
	// when an idle instance exists.
	Mode restore.Mode
	// DropCache evicts the snapshot's files from the page cache before a
	// restore, so the restore reads from disk.
	DropCache bool
}

// Timing breaks an invocation's latency into stages.
type Timing struct {
	Queue time.Duration `json:"queue_ns"`
	Start time.Duration `json:"start_ns"`
	Exec  time.Duration `json:"exec_ns"`
	// StartKind is warm, cold, or restore.
	StartKind string `json:"start_kind"`
	// Mode is how the instance started (cold or a restore mode).
	Mode restore.Mode `json:"mode"`
	// Instantiate and Init are the cold boot's stages.
	Instantiate time.Duration `json:"instantiate_ns,omitempty"`
	Init        time.Duration `json:"init_ns,omitempty"`
	// Restore holds the restore's stats, first invocation's faults included.
	Restore *restore.Stats `json:"restore,omitempty"`
	// Verify is the time spent after the call checking the snapshot pages
	// an mmap instance mapped during it; the caller waits for it, outside
	// Exec.
	Verify time.Duration `json:"verify_ns,omitempty"`
	// Source is where a restore read its snapshot: SourceLocal (the
	// snapshot directory) or SourceStore (the snapshot store); empty for
	// warm and cold starts.
	Source string `json:"source,omitempty"`
	// Fallback says why a restore fell back to a cold boot.
	Fallback string `json:"fallback,omitempty"`
	// DropCache is the time spent evicting the snapshot's files from the
	// page cache (InvokeOptions.DropCache), an experiment's preparation
	// that Start does not include.
	DropCache time.Duration `json:"drop_cache_ns,omitempty"`
	// Request is the invocation's request number in its instance's
	// lineage (requests served since the boot its snapshot descends from).
	Request int `json:"request"`
	// SnapshotRequest is the request number after which the snapshot the
	// instance restored was taken (-1: the instance booted cold).
	SnapshotRequest int `json:"snapshot_request"`
	// SnapshotID is that snapshot's ID (empty: booted cold).
	SnapshotID string `json:"snapshot_id,omitempty"`
}

// Result is an invocation's response and timing.
type Result struct {
	Response *abi.Response
	Timing   Timing
}

// Invoke serves req with an instance of the named function.
func (w *Worker) Invoke(ctx context.Context, name string, req *abi.Request, opts InvokeOptions) (*Result, error) {
	f, err := w.lookup(name)
	if err != nil {
		return nil, err
	}
	res, err := f.invoke(ctx, req, opts)
	outcome := "ok"
	if err != nil {
		outcome = errdefs.Category(err)
	} else {
		outcome = fmt.Sprintf("%dxx", res.Response.Status/100)
		w.metrics.latency.WithLabelValues(name, res.Timing.StartKind).Observe((res.Timing.Queue + res.Timing.Start + res.Timing.Exec).Seconds())
	}
	w.metrics.invocations.WithLabelValues(name, outcome).Inc()
	return res, err
}

func (f *function) invoke(ctx context.Context, req *abi.Request, opts InvokeOptions) (*Result, error) {
	var t Timing
	t0 := time.Now()
	fresh := opts.Mode != "" && opts.Mode != restore.Warm
	// A request still waiting for an instance leaves the queue when its
	// caller goes (acquire watches ctx).
	inst, warm, err := f.pool.acquire(ctx, fresh)
	t.Queue = time.Since(t0)
	if err != nil {
		return nil, err
	}
	// Once it holds an instance, the call runs to its end within the
	// function's own timeout (the engine sets that deadline) even if the
	// caller disconnects: cancelling it would kill the guest mid-call and
	// cost a restore for every aborted request.
	ctx = context.WithoutCancel(ctx)
	if !warm {
		t1 := time.Now()
		res, err := f.w.reserveMemory(ctx, f)
		t.Queue += time.Since(t1)
		if err != nil {
			f.release(nil)
			return nil, err
		}
		t1 = time.Now()
		mode := opts.Mode
		if !fresh {
			mode = f.rec.Config.mode()
		}
		inst, err = f.start(ctx, mode, fresh, opts.DropCache, &t)
		t.Start = time.Since(t1) - t.DropCache
		if err != nil {
			res.release()
			f.release(nil)
			return nil, err
		}
		res.attach(inst.Instance)
		f.w.metrics.starts.WithLabelValues(f.rec.Name, string(inst.mode)).Inc()
	} else {
		t.StartKind, t.Mode = "warm", inst.mode
	}
	f.w.metrics.instances.WithLabelValues(f.rec.Name, "busy").Inc()
	t2 := time.Now()
	resp, err := invokeWatched(ctx, inst, req)
	t.Exec = time.Since(t2)
	f.w.metrics.instances.WithLabelValues(f.rec.Name, "busy").Dec()
	inst.served++
	t.Request = inst.startReq + inst.served - 1
	t.SnapshotRequest = -1
	if inst.snap != nil {
		t.SnapshotRequest, t.SnapshotID = inst.snap.Meta.Request, inst.snap.Meta.ID
	}
	if inst.mem != nil {
		if why, cause := f.checkMemory(inst, &t); why != "" {
			f.w.metrics.discarded.WithLabelValues(f.rec.Name, string(inst.mode), cause).Inc()
			// The instance was given snapshot pages that failed their
			// checksum: the answer was computed from wrong memory. Discard
			// both and serve the request again from a cold boot (the
			// answer never left the worker).
			inst, resp, err = f.retryCold(ctx, inst, req, &t, why)
			if inst == nil {
				return nil, err
			}
		}
	}
	// The policy sees what the caller saw: a new instance's first request
	// carries its start (cold boot or restore), so a cold boot scores as
	// costly as it is.
	due := err == nil && f.afterExec(inst, t.Start+t.Exec) && f.claimCheckpoint(t.Request)
	if err == nil && !inst.Dead() {
		f.settle(inst, due, t.Request)
	} else {
		f.release(inst)
	}
	if err != nil {
		return nil, err
	}
	return &Result{Response: resp, Timing: t}, nil
}

// checkMemory runs after every call of a restored instance and says why
// its memory cannot be trusted ("" if it can). The first call collects the
// restore's stats, whose bad-page count covers what the pager refused; an
// mmap instance's newly mapped pages are verified after every call, since
// the kernel maps them unchecked and a later call can map more.
//
// The cause is a metric label: verify, checksum, source_unavailable or
// pager_lost.
func (f *function) checkMemory(inst *instance, t *Timing) (why, cause string) {
	// mmap checks the pages mapped during the call; the pager modes read
	// the count of pages the pager refused, from a page it shares with us.
	// Either way after every call, not only the first: a page first
	// touched by call 1000 is as likely to be damaged as one of call 1.
	t0 := time.Now()
	bad, err := inst.mem.Verify()
	t.Verify = time.Since(t0)
	if inst.served == 1 {
		f.afterFirstExec(inst, t)
		bad = max(bad, t.Restore.BadPages)
	}
	switch {
	case err != nil:
		return fmt.Sprintf("snapshot pages could not be verified after call %d (%v); retried on a cold boot", inst.served, err), "verify"
	case bad > 0:
		pf := inst.mem.Failures()
		switch {
		case pf.Lost > 0:
			return fmt.Sprintf("the pager died or stopped answering faults during call %d; retried on a cold boot", inst.served), "pager_lost"
		case pf.Unavailable > 0:
			return fmt.Sprintf("%d snapshot pages could not be fetched (page source unavailable) during call %d; retried on a cold boot", pf.Unavailable, inst.served), "source_unavailable"
		}
		return fmt.Sprintf("%d snapshot pages failed their checksum during call %d; retried on a cold boot", bad, inst.served), "checksum"
	}
	return "", ""
}

// pagerWatch is how often a call on paged memory checks whether the pager
// has refused a page.
const pagerWatch = 20 * time.Millisecond

// invokeWatched is inst.Invoke that stops the call as soon as the pager
// refuses one of its pages (watchPager).
func invokeWatched(ctx context.Context, inst *instance, req *abi.Request) (*abi.Response, error) {
	if inst.mem == nil {
		return inst.Invoke(ctx, req)
	}
	ctx, stop := watchPager(ctx, inst.mem)
	defer stop()
	return inst.Invoke(ctx, req)
}

// watchPager returns a context that is cancelled as soon as the pager
// refuses a page of mem (served as zeros: source unavailable, checksum,
// pager lost). A guest running on from wrong memory could otherwise loop
// until its timeout; the caller discards the instance and serves the
// request cold. Call stop when the guest code has returned.
func watchPager(ctx context.Context, mem *restore.Memory) (context.Context, func()) {
	if !mem.Paged() {
		return ctx, func() {}
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(pagerWatch)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if pf := mem.Failures(); pf.Unavailable+pf.Corrupt+pf.Lost > 0 {
					cancel()
					return
				}
			}
		}
	}()
	return cctx, func() { close(done); cancel() }
}

// restoreFailed names the pager's failures, if any, in the error of a
// restore whose hooks failed on mem, and counts the instance as discarded.
func (f *function) restoreFailed(mem *restore.Memory, mode restore.Mode, err error) error {
	pf := mem.Failures()
	switch {
	case pf.Lost > 0:
		f.w.metrics.discarded.WithLabelValues(f.rec.Name, string(mode), "pager_lost").Inc()
		return fmt.Errorf("the pager died or stopped answering faults during the restore: %w", err)
	case pf.Unavailable > 0:
		f.w.metrics.discarded.WithLabelValues(f.rec.Name, string(mode), "source_unavailable").Inc()
		return fmt.Errorf("%d snapshot pages could not be fetched (page source unavailable) during the restore: %w", pf.Unavailable, err)
	case pf.Corrupt > 0:
		f.w.metrics.discarded.WithLabelValues(f.rec.Name, string(mode), "checksum").Inc()
		return fmt.Errorf("%d snapshot pages failed their checksum during the restore: %w", pf.Corrupt, err)
	}
	return err
}

// retryCold replaces a restored instance whose memory turned out corrupt by
// a cold-booted one (in the same pool slot) and serves req on it.
func (f *function) retryCold(ctx context.Context, bad *instance, req *abi.Request, t *Timing, why string) (*instance, *abi.Response, error) {
	f.w.metrics.fallbacks.WithLabelValues(f.rec.Name, string(bad.mode)).Inc()
	bad.Close(ctx)
	t.Fallback = why
	f.w.log.Warn("snapshot memory not trusted; retrying cold", "function", f.rec.Name, "mode", bad.mode, "call", bad.served, "reason", why)
	t1 := time.Now()
	res, err := f.w.reserveMemory(ctx, f) // bad's reservation went with its region
	if err != nil {
		f.release(nil)
		return nil, nil, err
	}
	inst, err := f.start(ctx, restore.Cold, true, false, t)
	t.Start += time.Since(t1)
	if err != nil {
		res.release()
		f.release(nil)
		return nil, nil, err
	}
	res.attach(inst.Instance)
	f.w.metrics.starts.WithLabelValues(f.rec.Name, string(inst.mode)).Inc()
	t2 := time.Now()
	resp, err := inst.Invoke(ctx, req)
	t.Exec = time.Since(t2)
	inst.served++
	t.Request, t.SnapshotRequest = inst.startReq, -1
	return inst, resp, err
}

// settle gives an instance that has just served a request its idle call
// and, when checkpoint is set, its checkpoint, then returns it to the pool;
// all off the response path. A request that finds no idle instance may
// wait for a settling one rather than start another (acquire).
func (f *function) settle(inst *instance, checkpoint bool, req int) {
	f.pool.beginSettle()
	f.background.Add(1)
	go func() {
		defer f.background.Done()
		f.idleCall(inst)
		if checkpoint {
			f.checkpoint(inst, req)
		}
		f.releaseSettled(inst, true)
	}()
}

// idleCall runs the guest's idle export (thaw_idle, docs/abi.md) unless a
// request is already waiting for an instance. A guest that fails there, or
// that touched a snapshot page failing its checksum, is closed: it has
// served its request, and the next one gets a sound instance.
func (f *function) idleCall(inst *instance) {
	if f.pool.queued() {
		f.w.metrics.idle.WithLabelValues(f.rec.Name, "skipped").Inc()
		return
	}
	t0 := time.Now()
	ok, err := inst.Idle(context.Background())
	if !ok {
		return
	}
	f.w.metrics.idleSeconds.WithLabelValues(f.rec.Name).Observe(time.Since(t0).Seconds())
	if err == nil && inst.mem != nil {
		if bad, verr := inst.mem.Verify(); bad > 0 || verr != nil {
			err = fmt.Errorf("%d snapshot pages failed their checksum (%v)", bad, verr)
		}
	}
	if err != nil {
		f.w.metrics.idle.WithLabelValues(f.rec.Name, "failed").Inc()
		f.w.log.Warn("idle call failed; instance closed", "function", f.rec.Name, "err", err)
		inst.Close(context.Background())
		return
	}
	f.w.metrics.idle.WithLabelValues(f.rec.Name, "ok").Inc()
}

// release returns inst to the pool, or frees its slot when inst is nil or
// dead, and wakes the queue.
func (f *function) release(inst *instance) { f.releaseSettled(inst, false) }

// releaseSettled is release for an instance that settle held.
func (f *function) releaseSettled(inst *instance, settled bool) {
	if inst == nil {
		f.pool.free(settled)
		return
	}
	if f.pool.put(inst, settled) {
		f.w.budget.notify() // an idle instance can be evicted for memory
	}
}

// adopt puts an already-running instance (the deploy's boot instance) in the
// pool.
func (f *function) adopt(inst *engine.Instance) {
	if f.pool.adopt(f.withPolicy(&instance{Instance: inst, mode: restore.Cold})) {
		f.w.budget.notify()
	}
}

// start makes a new instance in mode from the snapshot the policy chooses
// (the initialisation snapshot when the mode is explicit), falling back to a cold boot when the
// snapshot is missing or the restore fails.
func (f *function) start(ctx context.Context, mode restore.Mode, explicit, dropCache bool, t *Timing) (*instance, error) {
	snap, policyCold := f.choose(explicit)
	if mode != restore.Cold && mode != restore.Warm && !policyCold {
		if snap == nil {
			t.Fallback = "no snapshot"
		} else {
			// The local snapshot, else the store's copy.
			inst, err := f.w.snapStore.restoreAny(ctx, f, snap, mode, dropCache, t)
			if err == nil {
				return inst, nil
			}
			t.Fallback = err.Error()
			f.w.metrics.fallbacks.WithLabelValues(f.rec.Name, string(mode)).Inc()
			f.w.log.Warn("restore failed; booting cold", "function", f.rec.Name, "mode", mode, "err", err)
		}
	}
	inst, bs, err := f.mod.Boot(ctx, f.instanceConfig())
	if err != nil {
		return nil, err
	}
	t.StartKind, t.Mode, t.Instantiate, t.Init = "cold", restore.Cold, bs.Instantiate, bs.Init
	f.w.metrics.stages.WithLabelValues("cold", "instantiate").Observe(bs.Instantiate.Seconds())
	f.w.metrics.stages.WithLabelValues("cold", "init").Observe(bs.Init.Seconds())
	return f.withPolicy(&instance{Instance: inst, mode: restore.Cold}), nil
}

// restore starts an instance from snap, reading its pages from src: its
// local files (restore.Files) or the store's copy (restoreFromStore). Both
// take this one path:
//
//   - A reap or bulk restore that fails its checks (errdefs.ErrCorrupt) is
//     tried once more: a working set being extended (in the background) is
//     replaced file by file, and a restore that paired the old ws.json with
//     the new ws.img fails its checks. Real damage fails again and the
//     caller falls back to a cold boot.
//   - A reap or bulk restore of a snapshot without a working set runs
//     lazily instead, and records one unless another restore already is.
//     reap and bulk trace the pages faulted outside the working set, so
//     that one that misses too often can be extended (afterFirstExec).
//
// Recording and tracing need the local snapshot: a working set is written
// beside the image it was recorded from (snapshot.WriteWorkingSet reads
// its pages from memory.img), and a store snapshot has no local image
// (src.Local is nil), so a restore from the store records none. dropCache
// drops local files from the page cache; the store's chunks are not.
func (f *function) restore(ctx context.Context, snap *snapshot.Snapshot, src restore.Source, mode restore.Mode, dropCache bool, t *Timing) (*instance, error) {
	local := src.Local()
	if dropCache && local != nil {
		t0 := time.Now()
		err := local.DropCache()
		t.DropCache += time.Since(t0)
		if err != nil {
			return nil, err
		}
	}
	prepMode, record := mode, false
	trace := mode.UsesWorkingSet() && local != nil
	limit := f.instanceConfig().MemoryLimit
	mem, err := f.w.restorer.Prepare(ctx, mode, src, limit, trace)
	if mode.UsesWorkingSet() && errors.Is(err, errdefs.ErrCorrupt) {
		mem, err = f.w.restorer.Prepare(ctx, mode, src, limit, trace)
	}
	if mode.UsesWorkingSet() && errors.Is(err, errdefs.ErrNotFound) {
		prepMode = restore.Lazy
		record = local != nil && f.recording.CompareAndSwap(false, true)
		mem, err = f.w.restorer.Prepare(ctx, prepMode, src, limit, record)
	}
	if err != nil {
		if record {
			f.recording.Store(false)
		}
		return nil, err
	}
	t0 := time.Now()
	rctx, stop := watchPager(ctx, mem)
	inst, err := f.mod.Restore(rctx, f.instanceConfig(), &src.Meta().State, mem.Region)
	stop()
	if err != nil {
		if record {
			f.recording.Store(false)
		}
		return nil, f.restoreFailed(mem, prepMode, err)
	}
	t.Instantiate = time.Since(t0)
	t.StartKind, t.Mode, t.Source = "restore", prepMode, SourceLocal
	if local == nil {
		t.Source = SourceStore
	}
	return f.withPolicy(&instance{Instance: inst, mem: mem, mode: prepMode, recording: record, snap: snap}), nil
}

// afterFirstExec collects a restored instance's stats, writes a recorded
// working set, and extends one that missed too often.
func (f *function) afterFirstExec(inst *instance, t *Timing) {
	st := inst.mem.Stats()
	t.Restore = &st
	m := f.w.metrics
	m.stages.WithLabelValues(string(inst.mode), "map").Observe(st.Map.Seconds())
	m.stages.WithLabelValues(string(inst.mode), "instantiate").Observe(t.Instantiate.Seconds())
	if st.Prefetch > 0 {
		m.stages.WithLabelValues(string(inst.mode), "prefetch").Observe(st.Prefetch.Seconds())
	}
	m.faults.WithLabelValues(f.rec.Name, string(inst.mode)).Add(float64(st.Faults))
	m.bytesRead.WithLabelValues(f.rec.Name, string(inst.mode)).Add(float64(st.BytesRead))
	if st.Reused {
		m.reused.WithLabelValues(f.rec.Name, string(inst.mode)).Inc()
	}
	snap := inst.snap
	if snap == nil {
		return
	}
	switch {
	case inst.recording:
		defer f.recording.Store(false)
		if inst.Dead() {
			return
		}
		trace, err := inst.mem.Trace()
		if err == nil {
			_, err = snap.WriteWorkingSet(trace)
		}
		if err != nil {
			f.w.log.Warn("recording working set failed", "function", f.rec.Name, "err", err)
			return
		}
		m.recordings.WithLabelValues(f.rec.Name).Inc()
		f.w.snapStore.publish(f.rec.Name, snap) // again, with the working set
	case inst.mode.UsesWorkingSet() && st.WSPages > 0:
		if float64(st.Faults) > f.rec.Config.RerecordMissRate*float64(st.WSPages) && !inst.Dead() {
			f.extendWorkingSet(inst, snap, st)
		}
	}
}

// extendWorkingSet re-records a working set that missed too often: the new
// one is the old plus the pages this first call faulted on outside it,
// written in the background (WaitCheckpoints waits for it), off the
// response path. Deleting it instead would make the snapshot's next
// restore a slow lazy recording one, and for a checkpoint (whose working
// set is its parent's) that was most of its restores. If the extension
// fails, the working set is deleted, and the next restore records one.
func (f *function) extendWorkingSet(inst *instance, snap *snapshot.Snapshot, st restore.Stats) {
	if !f.recording.CompareAndSwap(false, true) {
		return // another restore is writing one
	}
	missed, err := inst.mem.Trace() // while the pager session lives
	f.background.Add(1)
	go func() {
		defer f.background.Done()
		defer f.recording.Store(false)
		if err == nil {
			var ws *snapshot.WorkingSet
			if ws, err = snap.WorkingSet(); err == nil {
				_, err = snap.ExtendWorkingSet(ws, missed)
			}
		}
		if err != nil {
			f.w.log.Warn("extending the working set failed; re-recording", "function", f.rec.Name, "err", err)
			_ = snap.RemoveWorkingSet()
			return
		}
		f.w.log.Info("working set missed too often; extended", "function", f.rec.Name, "faults", st.Faults, "ws_pages", st.WSPages)
		f.w.metrics.recordings.WithLabelValues(f.rec.Name).Inc()
		f.w.snapStore.publish(f.rec.Name, snap) // again, with the working set
	}()
}

// reap closes instances idle past the keep-alive, keeping min_instances
// unless all is set.
func (f *function) reap(ctx context.Context, now time.Time, all bool) {
	floor := f.rec.Config.MinInstances
	if all {
		floor = 0
	}
	f.pool.reap(ctx, now, time.Duration(f.rec.Config.KeepAlive), floor)
}

// shutdown closes idle instances and marks the function closed; busy
// instances close when released.
func (f *function) shutdown(ctx context.Context) {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.pool.shutdown(ctx)
	_ = f.mod.Close(ctx)
}
