package worker

import (
	"context"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/thaw-run/thaw/internal/crashpoint"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/policy"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// checkpointer keeps a function's snapshots: the one taken at deploy,
// after initialisation, and the checkpoints of live instances its
// snapshot policy asks for (policy.go). It chooses with the policy which
// snapshot a new instance restores, takes the checkpoints, prunes the pool
// of snapshots and persists it, and writes the working sets restores
// record or extend.
//
// Its lock guards the snapshots; the policy has its own, and is called
// without the first held.
type checkpointer struct {
	w   *Worker
	rec *record // the function's
	mod engine.Module
	// recording is the function's: set while one of its working sets is
	// being recorded (a restore claims it) or written.
	recording *atomic.Bool
	// background is the function's count of work off the requests' path.
	background *sync.WaitGroup
	// pol is the snapshot policy; polMu serialises calls into it.
	pol   policy.Policy
	polMu sync.Mutex
	// bufs keeps buffers checkpoints copied memory into.
	bufs buffers

	mu   sync.Mutex
	snap *snapshot.Snapshot // taken after initialisation (request 0)
	// extra are the policy's later snapshots, oldest first.
	extra []*snapshot.Snapshot
	// pending are the request numbers of checkpoints being taken.
	pending map[int]bool
	// closed is set when the function is shut down: a checkpoint
	// finishing later drops its snapshot.
	closed bool
}

// close marks the function shut down.
func (c *checkpointer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// info describes the initialisation snapshot, if any, and counts the
// later ones.
func (c *checkpointer) info() (*SnapshotInfo, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == nil {
		return nil, len(c.extra)
	}
	si := &SnapshotInfo{ID: c.snap.Meta.ID, MemoryBytes: c.snap.Meta.ImageSize, DataBytes: c.snap.Meta.DataPages * snapshot.PageSize}
	if ws, err := c.snap.WorkingSet(); err == nil {
		si.WSBytes = ws.Bytes()
	}
	return si, len(c.extra)
}

// snapshotIDs returns the ids of the function's snapshots: the deploy
// snapshot and the policy's pool.
func (c *checkpointer) snapshotIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	if c.snap != nil {
		ids = append(ids, c.snap.Meta.ID)
	}
	for _, s := range c.extra {
		ids = append(ids, s.Meta.ID)
	}
	return ids
}

// checkpoint snapshots a live instance between requests. The instance is
// idle and owned by the caller (not yet back in the pool), so copying its
// memory is a consistent cut; the copy is written in the background while
// the instance serves on.
func (c *checkpointer) checkpoint(inst *instance, req int) {
	handed := false // to the writer, which then clears pending
	defer func() {
		if !handed {
			c.mu.Lock()
			delete(c.pending, req)
			c.mu.Unlock()
		}
	}()
	if inst.Dead() { // closed by its idle call
		return
	}
	parent := inst.snap
	var missed []int
	if inst.mem != nil {
		missed, _ = inst.mem.Trace() // the pages it faulted on outside its working set
	}
	st, mem := inst.Capture()
	buf := c.bufs.get(len(mem))
	if err := captureMemory(inst, buf, mem); err != nil {
		c.w.log.Debug("checkpoint copies all memory", "function", c.rec.Name, "request", req, "err", err)
		copy(buf, mem)
	}
	if inst.mem != nil {
		// A page the instance was given that failed its checksum must not
		// be sealed into a new snapshot with fresh, matching checksums.
		if bad, err := inst.mem.Verify(); bad > 0 || err != nil {
			c.w.log.Warn("checkpoint skipped: the instance's snapshot pages failed verification", "function", c.rec.Name, "request", req, "bad_pages", bad, "err", err)
			c.bufs.put(buf)
			inst.Close(context.Background()) // release drops it from the pool
			return
		}
	}
	handed = true
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		snap, err := c.w.writeSnapshot(c.rec, st, buf, req)
		c.bufs.put(buf)
		if err == nil {
			crashpoint.Hit(crashpoint.CheckpointSnapshotWritten)
		}
		if err == nil {
			err = c.mod.PrepareRestore(c.w.ctx, snap.Meta.State.Pages)
		}
		if err == nil && parent != nil {
			inheritWorkingSet(parent, snap, missed)
		}
		if err != nil {
			c.mu.Lock()
			delete(c.pending, req)
			c.mu.Unlock()
			c.w.log.Warn("checkpoint failed", "function", c.rec.Name, "request", req, "err", err)
			return
		}
		c.mu.Lock()
		closed := c.closed
		if !closed {
			c.extra = append(c.extra, snap)
		}
		delete(c.pending, req)
		c.mu.Unlock()
		if closed {
			c.w.snapStore.drop(c.rec.Name, []string{snap.Meta.ID})
			_ = os.RemoveAll(snap.Dir)
			return
		}
		c.w.metrics.checkpoints.WithLabelValues(c.rec.Name).Inc()
		c.prune()
		c.savePolicy()
		crashpoint.Hit(crashpoint.CheckpointPolicySaved)
	}()
}

// captureMemory copies an instance's memory into buf without touching the
// pages the instance never touched: those are read from the snapshot it
// was restored from (checked against its checksums), or are zeros in a
// booted instance or past the snapshot's image. Copying them from memory
// instead would map every page of the region, through the pager under
// userfaultfd, and a region that returns to the pool with all its pages
// mapped makes the next restore into it drop them all again: that cost
// tens of milliseconds per restore of a 40 MiB function whose calls touch
// 3 MiB (docs/policy.md). On error (the local image is damaged, or gone
// since a restore from the store) buf is partly written and the caller
// copies all of mem, whose pages come from the instance's own, checked,
// source.
func captureMemory(inst *instance, buf, mem []byte) error {
	present, err := inst.Region().Present(uint64(len(mem)))
	if err != nil {
		return err
	}
	imagePages := 0
	if inst.snap != nil {
		imagePages = inst.snap.Pages()
	}
	var fromImage []snapshot.Run
	for p := 0; p < len(present); {
		end := p + 1
		for end < len(present) && present[end] == present[p] {
			end++
		}
		lo, hi := p*engine.PageSize, min(end*engine.PageSize, len(mem))
		switch {
		case present[p]:
			copy(buf[lo:hi], mem[lo:hi])
		case p < imagePages:
			fromImage = append(fromImage, snapshot.Run{Start: p, Count: min(end, imagePages) - p})
			clear(buf[min(imagePages*engine.PageSize, hi):hi])
		default:
			clear(buf[lo:hi])
		}
		p = end
	}
	if len(fromImage) > 0 {
		return inst.snap.ReadPages(buf, fromImage)
	}
	return nil
}

// inheritWorkingSet gives a checkpoint the working set of the snapshot its
// instance was restored from plus the pages the instance faulted on outside
// it (missed): the same function a few requests later touches nearly the
// same pages, so restores of the new snapshot can prefetch at once instead
// of first recording lazily. Pages the guess misses fault lazily and, past
// the miss rate, extend it. The set only grows along a lineage; with
// reused regions prefetching a page costs a copy, while a miss costs a
// round trip to the pager (docs/policy.md).
func inheritWorkingSet(parent, snap *snapshot.Snapshot, missed []int) {
	if ws, err := parent.WorkingSet(); err == nil {
		_, _ = snap.ExtendWorkingSet(ws, missed)
	}
}

// afterFirstExec collects a restored instance's stats, writes a recorded
// working set, and extends one that missed too often.
func (c *checkpointer) afterFirstExec(inst *instance, t *Timing) {
	st := inst.mem.Stats()
	t.Restore = &st
	m := c.w.metrics
	m.stages.WithLabelValues(string(inst.mode), "map").Observe(st.Map.Seconds())
	m.stages.WithLabelValues(string(inst.mode), "instantiate").Observe(t.Instantiate.Seconds())
	if st.Prefetch > 0 {
		m.stages.WithLabelValues(string(inst.mode), "prefetch").Observe(st.Prefetch.Seconds())
	}
	m.faults.WithLabelValues(c.rec.Name, string(inst.mode)).Add(float64(st.Faults))
	m.bytesRead.WithLabelValues(c.rec.Name, string(inst.mode)).Add(float64(st.BytesRead))
	if st.Reused {
		m.reused.WithLabelValues(c.rec.Name, string(inst.mode)).Inc()
	}
	snap := inst.snap
	if snap == nil {
		return
	}
	switch {
	case inst.recording:
		defer c.recording.Store(false)
		if inst.Dead() {
			return
		}
		trace, err := inst.mem.Trace()
		if err == nil {
			_, err = snap.WriteWorkingSet(trace)
		}
		if err != nil {
			c.w.log.Warn("recording working set failed", "function", c.rec.Name, "err", err)
			return
		}
		m.recordings.WithLabelValues(c.rec.Name).Inc()
		c.w.snapStore.publish(c.rec.Name, snap) // again, with the working set
	case inst.mode.UsesWorkingSet() && st.WSPages > 0:
		if float64(st.Faults) > c.rec.Config.RerecordMissRate*float64(st.WSPages) && !inst.Dead() {
			c.extendWorkingSet(inst, snap, st)
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
func (c *checkpointer) extendWorkingSet(inst *instance, snap *snapshot.Snapshot, st restore.Stats) {
	if !c.recording.CompareAndSwap(false, true) {
		return // another restore is writing one
	}
	missed, err := inst.mem.Trace() // while the pager session lives
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		defer c.recording.Store(false)
		if err == nil {
			var ws *snapshot.WorkingSet
			if ws, err = snap.WorkingSet(); err == nil {
				_, err = snap.ExtendWorkingSet(ws, missed)
			}
		}
		if err != nil {
			c.w.log.Warn("extending the working set failed; re-recording", "function", c.rec.Name, "err", err)
			_ = snap.RemoveWorkingSet()
			return
		}
		c.w.log.Info("working set missed too often; extended", "function", c.rec.Name, "faults", st.Faults, "ws_pages", st.WSPages)
		c.w.metrics.recordings.WithLabelValues(c.rec.Name).Inc()
		c.w.snapStore.publish(c.rec.Name, snap) // again, with the working set
	}()
}

// buffers keeps a few byte slices for reuse. A checkpoint copies all of an
// instance's memory; into a new buffer that costs a fresh page-table entry
// per page on a VM (docs/restore.md, "Region pool"), tens of milliseconds
// of CPU per checkpoint beside the requests being served.
type buffers struct {
	mu   sync.Mutex
	free [][]byte
}

// maxBuffers bounds the buffers kept: a function writes one checkpoint at
// a time in the common case.
const maxBuffers = 2

// get returns a buffer of n bytes, reused if one is large enough.
func (b *buffers) get(n int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, buf := range b.free {
		if cap(buf) >= n {
			b.free = append(b.free[:i], b.free[i+1:]...)
			return buf[:n]
		}
	}
	return make([]byte, n)
}

// put keeps buf for reuse, the largest maxBuffers at most.
func (b *buffers) put(buf []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free = append(b.free, buf[:cap(buf)])
	if len(b.free) > maxBuffers {
		slices.SortFunc(b.free, func(x, y []byte) int { return cap(y) - cap(x) })
		b.free = b.free[:maxBuffers]
	}
}
