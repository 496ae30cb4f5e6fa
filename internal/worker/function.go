package worker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// instance is an engine instance of a function with what the worker
// tracks about it: how it started, what it has served, its checkpoint.
type instance struct {
	engine.Instance
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

// function is one deployed function: its module, its instances (pool),
// and its snapshots and policy (ckpt); instances start in start.go. A
// redeploy replaces the whole function; the old one drains and closes.
type function struct {
	w   *Worker
	rec record
	mod engine.Module

	// pool holds the function's instances, idle and in use.
	pool *pool[*instance]
	// ckpt keeps the function's snapshots and policy and takes its
	// checkpoints.
	ckpt *checkpointer

	// recording is set while one of the function's working sets is being
	// recorded: restore claims it for the instance that records, and the
	// checkpointer releases it once the set is written.
	recording atomic.Bool
	// background counts work done off the requests' path: idle calls,
	// checkpoints and working-set writes.
	background sync.WaitGroup
}

func (w *Worker) newFunction(rec record, mod engine.Module) (*function, error) {
	pol, err := newPolicy(rec.Config.WithDefaults())
	if err != nil {
		return nil, err
	}
	idle := w.metrics.instances.WithLabelValues(rec.Name, "idle")
	f := &function{w: w, rec: rec, mod: mod, pool: newPool[*instance](rec.Name, rec.Config.MaxInstances, rec.Config.MaxQueue, idle)}
	f.ckpt = &checkpointer{w: w, rec: &f.rec, mod: mod, recording: &f.recording, background: &f.background, pol: pol}
	return f, nil
}

func (f *function) instanceConfig() engine.InstanceConfig {
	return engine.InstanceConfig{MemoryLimit: uint64(f.rec.Config.MemoryMiB) << 20, Timeout: time.Duration(f.rec.Config.Timeout),
		InitTimeout: time.Duration(f.rec.Config.InitTimeout)}
}

func (f *function) info() Info {
	idle, total := f.pool.counts()
	in := Info{Name: f.rec.Name, Config: f.rec.Config, ModuleSHA: f.rec.ModuleSHA, ModuleSize: f.rec.ModuleSize,
		Deployed: f.rec.Deployed, Idle: idle, Busy: total - idle, Policy: f.rec.Config.Policy}
	in.Snapshot, in.PoolSnapshots = f.ckpt.info()
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
	// Worker is the node id of the cluster worker that served the
	// invocation, and Placement the placement rule that chose it
	// (internal/placement's Reason); both empty outside a cluster
	// (internal/coord sets them).
	Worker    string `json:"worker,omitempty"`
	Placement string `json:"placement,omitempty"`
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
	due := err == nil && f.ckpt.afterExec(inst, t.Start+t.Exec) && f.ckpt.claimCheckpoint(t.Request)
	// A restore that left the region pool without a region of its
	// function asks for a spare once its first call has answered
	// (restore.Restorer.Spare, which does nothing for any other). Read
	// before settle hands the instance to the next request.
	var spareOf *restore.Memory
	if err == nil && inst.served == 1 {
		spareOf = inst.mem
	}
	if err == nil && !inst.Dead() {
		f.settle(ctx, inst, due, t.Request)
	} else {
		f.release(inst)
	}
	if err != nil {
		return nil, err
	}
	if spareOf != nil {
		f.w.afterResponse(ctx, func() { f.w.restorer.Spare(spareOf, f.spareFunc()) })
	}
	return &Result{Response: resp, Timing: t}, nil
}

// spareFunc is how a spare of f finishes (restore.SpareFunc): with an
// instance restored over it and closed (spareInstance) if f's engine keeps
// closed instances with their regions (engine.Module.KeepsInstances); as
// memory only otherwise.
func (f *function) spareFunc() restore.SpareFunc {
	if f.mod.KeepsInstances() {
		return f.spareInstance
	}
	return nil
}

// spareInstance restores an instance over a spare region's memory and
// closes it at once, so that the region keeps it: the next restore there
// resets it instead of instantiating, which takes longer than a small
// working set's fill.
func (f *function) spareInstance(ctx context.Context, m *restore.Memory, src restore.Source, ready func() error) error {
	inst, err := f.mod.RestoreWhen(ctx, f.instanceConfig(), &src.Meta().State, m.Region, ready)
	if err != nil {
		return err
	}
	inst.Close(ctx)
	return nil
}

// settle gives an instance that has just served a request its idle call
// and, when checkpoint is set, its checkpoint, then returns it to the pool;
// all off the response path. A request that finds no idle instance may
// wait for a settling one rather than start another (pool.acquire).
func (f *function) settle(ctx context.Context, inst *instance, checkpoint bool, req int) {
	f.pool.beginSettle()
	f.background.Add(1)
	f.w.afterResponse(ctx, func() {
		go func() {
			defer f.background.Done()
			f.idleCall(inst)
			if checkpoint {
				f.ckpt.checkpoint(inst, req)
			}
			f.releaseSettled(inst, true)
		}()
	})
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
func (f *function) adopt(inst engine.Instance) {
	if f.pool.adopt(f.ckpt.withPolicy(&instance{Instance: inst, mode: restore.Cold})) {
		f.w.budget.notify()
	}
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
	f.ckpt.close()
	f.pool.shutdown(ctx)
	_ = f.mod.Close(ctx)
}
