package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/timeline"
)

// Starting instances: start restores a new instance or boots it cold,
// restore restores one from a snapshot's local files or, through
// restoreFromStore (store.go), from the store's copy, checkMemory checks a
// restored instance's memory after each call, and retryCold serves the
// call again on a cold boot when that memory cannot be trusted. Every fallback to a cold boot says why in
// Timing.Fallback and counts in thaw_fallbacks_total.

// start makes a new instance in mode from the snapshot the policy chooses
// (the initialisation snapshot when the mode is explicit), falling back to
// a cold boot when the snapshot is missing or the restore fails.
func (f *function) start(ctx context.Context, mode restore.Mode, explicit, dropCache bool, t *Timing) (*instance, error) {
	snap, policyCold := f.ckpt.choose(explicit)
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
	return f.ckpt.withPolicy(&instance{Instance: inst, mode: restore.Cold}), nil
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
	timeline.Mark(timeline.Start)
	r, err := f.restoreOnce(ctx, src, mode, local != nil)
	if r.retry && mode.UsesWorkingSet() {
		r, err = f.restoreOnce(ctx, src, mode, local != nil)
	}
	if err != nil {
		return nil, err
	}
	t.Instantiate = r.instantiate
	t.StartKind, t.Mode, t.Source = "restore", r.mode, SourceLocal
	if local == nil {
		t.Source = SourceStore
	}
	return f.ckpt.withPolicy(&instance{Instance: r.inst, mem: r.mem, mode: r.mode, recording: r.record, snap: snap}), nil
}

// restored is what restoreOnce made.
type restored struct {
	inst engine.Instance
	mem  *restore.Memory
	// mode is the mode the memory was prepared in: lazy when a reap or
	// bulk restore found no working set.
	mode restore.Mode
	// record is set when this restore records the working set.
	record bool
	// instantiate is what the engine added to the start after the memory
	// was ready: instantiation beyond the working set's read (the two
	// overlap), growing the memory, the globals and the restore hooks.
	instantiate time.Duration
	// retry is set when the restore failed because snapshot data failed
	// its checks while the memory was prepared (errdefs.ErrCorrupt): a
	// working set being extended may have been read half old, half new.
	retry bool
}

// restoreOnce prepares memory from src in mode and restores an instance
// over it, the engine instantiating while a bulk restore reads its working
// set (restore.Restorer.Start, engine.Module.RestoreWhen). A reap or bulk
// restore of a local snapshot without a working set first adopts the one
// the store holds for it, if any (workerStore.adoptWorkingSet); without
// one it runs lazily instead, and records one if local and no other
// restore is recording.
func (f *function) restoreOnce(ctx context.Context, src restore.Source, mode restore.Mode, local bool) (r restored, err error) {
	r.mode = mode
	trace := mode.UsesWorkingSet() && local
	limit := f.instanceConfig().MemoryLimit
	mem, ready, err := f.w.restorer.Start(ctx, mode, src, limit, trace)
	if mode.UsesWorkingSet() && local && errors.Is(err, errdefs.ErrNotFound) && f.w.snapStore.adoptWorkingSet(ctx, f, src.Local(), false) {
		mem, ready, err = f.w.restorer.Start(ctx, mode, src, limit, trace)
	}
	if mode.UsesWorkingSet() && errors.Is(err, errdefs.ErrNotFound) {
		r.mode = restore.Lazy
		r.record = local && f.recording.CompareAndSwap(false, true)
		mem, ready, err = f.w.restorer.Start(ctx, r.mode, src, limit, r.record)
	}
	defer func() {
		if err != nil && r.record {
			f.recording.Store(false)
		}
	}()
	if err != nil {
		r.retry = errors.Is(err, errdefs.ErrCorrupt)
		return r, err
	}
	var readyErr error
	var readyAt time.Time
	t0 := time.Now()
	rctx, stop := watchPager(ctx, mem)
	var wait func() error // nil: the memory is ready (every mode but bulk)
	if ready != nil {
		wait = func() error {
			readyErr = ready()
			readyAt = time.Now()
			return readyErr
		}
	}
	inst, err := f.mod.RestoreWhen(rctx, f.instanceConfig(), &src.Meta().State, mem.Region, wait)
	stop()
	if readyErr != nil {
		r.retry = errors.Is(readyErr, errdefs.ErrCorrupt)
		return r, readyErr
	}
	if err != nil {
		return r, f.restoreFailed(mem, r.mode, err)
	}
	r.inst, r.mem = inst, mem
	if readyAt.After(t0) {
		t0 = readyAt
	}
	r.instantiate = time.Since(t0)
	return r, nil
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
		f.ckpt.afterFirstExec(inst, t)
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
	timeline.Mark(timeline.Call)
	defer timeline.Mark(timeline.Called)
	return inst.Invoke(ctx, req)
}

// watchPager returns a context that is cancelled as soon as the pager
// refuses a page of mem (served as zeros: source unavailable, checksum,
// pager lost). A guest running on from wrong memory could otherwise loop
// until its timeout; the caller discards the instance and serves the
// request cold. Call stop when the guest code has returned.
//
// The check runs every pagerWatch on a timer, not on a goroutine of its
// own: most calls end before the first check, and then cost neither a
// goroutine nor waking a thread for it.
func watchPager(ctx context.Context, mem *restore.Memory) (context.Context, func()) {
	if !mem.Paged() {
		return ctx, func() {}
	}
	cctx, cancel := context.WithCancel(ctx)
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(pagerWatch, func() {
		if pf := mem.Failures(); pf.Unavailable+pf.Corrupt+pf.Lost > 0 {
			cancel()
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(pagerWatch)
		}
	})
	return cctx, func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
		cancel()
	}
}
