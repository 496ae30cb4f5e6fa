package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/crashpoint"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/policy"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
)

// policyFile persists a function's policy state and snapshot pool.
const policyFile = "policy.json"

type policyRecord struct {
	// Extra lists the pool's snapshots beyond the initialisation one.
	Extra []string        `json:"extra"`
	State json.RawMessage `json:"state,omitempty"`
	// Deployed is the deploy time of the record the pool belongs to: a
	// pool saved for another deploy of the name is not this one's. Zero
	// in files written before it existed.
	Deployed time.Time `json:"deployed,omitzero"`
}

// candidates lists the pool: the initialisation snapshot first.
func (f *function) candidates() ([]policy.Candidate, []*snapshot.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var snaps []*snapshot.Snapshot
	if f.snap != nil {
		snaps = append(snaps, f.snap)
	}
	snaps = append(snaps, f.extra...)
	cands := make([]policy.Candidate, len(snaps))
	for i, s := range snaps {
		cands[i] = policy.Candidate{ID: s.Meta.ID, Request: s.Meta.Request}
	}
	return cands, snaps
}

// choose picks the snapshot a new instance restores. Explicit modes (an
// experiment's X-Thaw-Mode) always use the initialisation snapshot so modes
// compare on the same image; otherwise the policy chooses, and may choose
// a cold boot.
func (f *function) choose(explicit bool) (snap *snapshot.Snapshot, cold bool) {
	cands, snaps := f.candidates()
	if explicit || f.pol == nil || len(snaps) == 0 {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.snap, false
	}
	f.polMu.Lock()
	i := f.pol.Choose(cands)
	f.polMu.Unlock()
	if i == policy.Cold || i < 0 || i >= len(snaps) {
		return nil, true
	}
	return snaps[i], false
}

// withPolicy sets an instance's request numbering and checkpoint.
func (f *function) withPolicy(inst *instance) *instance {
	inst.startReq = 1
	if inst.snap != nil {
		inst.startReq = inst.snap.Meta.Request + 1
	}
	if f.pol != nil {
		f.polMu.Lock()
		inst.checkpointAt = f.pol.CheckpointAt(inst.startReq)
		f.polMu.Unlock()
	}
	return inst
}

// afterExec feeds the policy and reports whether the policy's checkpoint
// request has just been served, so the instance must be snapshotted.
func (f *function) afterExec(inst *instance, latency time.Duration) (checkpointDue bool) {
	if f.pol == nil || inst.Dead() {
		return false
	}
	req := inst.startReq + inst.served - 1
	f.polMu.Lock()
	f.pol.Observe(req, latency)
	f.polMu.Unlock()
	return inst.checkpointAt > 0 && req == inst.checkpointAt
}

// claimCheckpoint reports whether a checkpoint after request req should be
// taken, and if so marks it pending until checkpoint ends. One is skipped
// when the pool already holds, or is writing, a snapshot after the same
// request: policies score snapshots by request number, so a second one
// tells them nothing new, and on a two-core machine its copy, write and
// fsync compete with the requests being served. (Under eviction after
// every request, instances restored from the same snapshot while the next
// one is still being written would otherwise each write a duplicate.)
func (f *function) claimCheckpoint(req int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending[req] || (f.snap != nil && f.snap.Meta.Request == req) {
		return false
	}
	for _, s := range f.extra {
		if s.Meta.Request == req {
			return false
		}
	}
	if f.pending == nil {
		f.pending = map[int]bool{}
	}
	f.pending[req] = true
	return true
}

// checkpoint snapshots a live instance between requests. The instance is
// idle and owned by the caller (not yet back in the pool), so copying its
// memory is a consistent cut; the copy is written in the background while
// the instance serves on.
func (f *function) checkpoint(inst *instance, req int) {
	handed := false // to the writer, which then clears pending
	defer func() {
		if !handed {
			f.mu.Lock()
			delete(f.pending, req)
			f.mu.Unlock()
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
	buf := f.ckptBufs.get(len(mem))
	if err := captureMemory(inst, buf, mem); err != nil {
		f.w.log.Debug("checkpoint copies all memory", "function", f.rec.Name, "request", req, "err", err)
		copy(buf, mem)
	}
	if inst.mem != nil {
		// A page the instance was given that failed its checksum must not
		// be sealed into a new snapshot with fresh, matching checksums.
		if bad, err := inst.mem.Verify(); bad > 0 || err != nil {
			f.w.log.Warn("checkpoint skipped: the instance's snapshot pages failed verification", "function", f.rec.Name, "request", req, "bad_pages", bad, "err", err)
			f.ckptBufs.put(buf)
			inst.Close(context.Background()) // release drops it from the pool
			return
		}
	}
	handed = true
	f.background.Add(1)
	go func() {
		defer f.background.Done()
		snap, err := f.w.writeSnapshot(&f.rec, st, buf, req)
		f.ckptBufs.put(buf)
		if err == nil {
			crashpoint.Hit(crashpoint.CheckpointSnapshotWritten)
		}
		if err == nil {
			err = f.mod.PrepareRestore(f.w.ctx, snap.Meta.State.Pages)
		}
		if err == nil && parent != nil {
			inheritWorkingSet(parent, snap, missed)
		}
		if err != nil {
			f.mu.Lock()
			delete(f.pending, req)
			f.mu.Unlock()
			f.w.log.Warn("checkpoint failed", "function", f.rec.Name, "request", req, "err", err)
			return
		}
		f.mu.Lock()
		closed := f.closed
		if !closed {
			f.extra = append(f.extra, snap)
		}
		delete(f.pending, req)
		f.mu.Unlock()
		if closed {
			f.w.snapStore.drop(f.rec.Name, []string{snap.Meta.ID})
			_ = os.RemoveAll(snap.Dir)
			return
		}
		f.w.metrics.checkpoints.WithLabelValues(f.rec.Name).Inc()
		f.prune()
		f.savePolicy()
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

// prune keeps the pool within pool_size (or the policy's own, smaller,
// pool); the initialisation snapshot is always kept.
func (f *function) prune() {
	capacity := f.rec.Config.PoolSize
	if ps, ok := f.pol.(policy.PoolSizer); ok {
		capacity = min(capacity, ps.PoolSize())
	}
	cands, snaps := f.candidates()
	if len(snaps) <= capacity {
		return
	}
	f.polMu.Lock()
	keepIdx := f.pol.Prune(cands, capacity)
	f.polMu.Unlock()
	keep := map[string]bool{}
	if f.snap != nil {
		keep[f.snap.Meta.ID] = true
	}
	for _, i := range keepIdx {
		if i >= 0 && i < len(snaps) && len(keep) < capacity {
			keep[snaps[i].Meta.ID] = true
		}
	}
	var drop []*snapshot.Snapshot
	f.mu.Lock()
	kept := f.extra[:0]
	for _, s := range f.extra {
		if keep[s.Meta.ID] {
			kept = append(kept, s)
		} else {
			drop = append(drop, s)
		}
	}
	f.extra = kept
	f.mu.Unlock()
	var ids []string
	for _, s := range drop {
		ids = append(ids, s.Meta.ID)
	}
	f.w.snapStore.drop(f.rec.Name, ids)
	for _, s := range drop {
		// Instances restored from a dropped snapshot keep running: their
		// memory is already theirs (eager, bulk) or mapped (mmap, lazy:
		// an unlinked file stays readable while open).
		_ = os.RemoveAll(s.Dir)
	}
}

// savePolicy persists the policy state and the pool.
func (f *function) savePolicy() {
	if f.pol == nil {
		return
	}
	f.polMu.Lock()
	state, err := f.pol.MarshalState()
	f.polMu.Unlock()
	if err != nil {
		return
	}
	rec := policyRecord{State: state, Deployed: f.rec.Deployed}
	f.mu.Lock()
	for _, s := range f.extra {
		rec.Extra = append(rec.Extra, filepath.Base(s.Dir))
	}
	f.mu.Unlock()
	b, err := json.Marshal(rec)
	if err == nil {
		err = writeAtomic(filepath.Join(f.w.fnDir(f.rec.Name), policyFile), b, nil)
	}
	if err != nil {
		f.w.log.Warn("saving policy state failed", "function", f.rec.Name, "err", err)
	}
}

// maxPolicyBytes bounds policy.json: a pronghorn state of MaxTracked
// latencies and a pool of at most 64 snapshot ids take some 30 KiB.
const maxPolicyBytes = 1 << 20

// maxPoolIDs bounds the pool a policy.json may list (Config.PoolSize's
// upper bound).
const maxPoolIDs = 64

// decodePolicyRecord parses policy.json. Every pool entry must be one path
// segment naming a snapshot directory, each at most once: the worker opens
// them under the function's snapshot directory and deletes the ones the
// policy prunes, so "../other/ID" would reach another function's. Any
// failure is errdefs.ErrCorrupt.
func decodePolicyRecord(b []byte) (policyRecord, error) {
	var rec policyRecord
	if len(b) > maxPolicyBytes {
		return policyRecord{}, fmt.Errorf("%s: %d bytes, at most %d: %w", policyFile, len(b), maxPolicyBytes, errdefs.ErrCorrupt)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return policyRecord{}, fmt.Errorf("%s: %v: %w", policyFile, err, errdefs.ErrCorrupt)
	}
	if len(rec.Extra) > maxPoolIDs {
		return policyRecord{}, fmt.Errorf("%s: %d pool snapshots, at most %d: %w", policyFile, len(rec.Extra), maxPoolIDs, errdefs.ErrCorrupt)
	}
	seen := make(map[string]bool, len(rec.Extra))
	for _, id := range rec.Extra {
		if store.ValidSnapshotID(id) != nil || seen[id] {
			return policyRecord{}, fmt.Errorf("%s: pool snapshot %q is not a snapshot id or is repeated: %w", policyFile, id, errdefs.ErrCorrupt)
		}
		seen[id] = true
	}
	return rec, nil
}

// loadPolicy restores the policy state and pool saved by savePolicy.
func (f *function) loadPolicy() {
	b, err := snapshot.ReadFileLimit(filepath.Join(f.w.fnDir(f.rec.Name), policyFile), maxPolicyBytes)
	if err != nil {
		if !os.IsNotExist(err) {
			f.w.log.Warn("policy state unreadable; starting afresh", "function", f.rec.Name, "err", err)
		}
		return
	}
	rec, err := decodePolicyRecord(b)
	if err != nil {
		f.w.log.Warn("policy state unreadable; starting afresh", "function", f.rec.Name, "err", err)
		return
	}
	if !rec.Deployed.IsZero() && !rec.Deployed.Equal(f.rec.Deployed) {
		f.w.log.Info("policy state of a previous deploy removed", "function", f.rec.Name)
		_ = os.Remove(filepath.Join(f.w.fnDir(f.rec.Name), policyFile))
		return
	}
	if len(rec.State) > 0 {
		if err := f.pol.UnmarshalState(rec.State); err != nil {
			f.w.log.Warn("policy state unreadable; starting afresh", "function", f.rec.Name, "err", err)
		}
	}
	for _, id := range rec.Extra {
		// Falls back to the store's copy.
		snap, err := f.w.openSnapshot(f.w.ctx, f, id)
		if err != nil {
			f.w.log.Warn("dropping unusable pool snapshot", "function", f.rec.Name, "snapshot", id, "err", err)
			continue
		}
		if err := f.mod.PrepareRestore(f.w.ctx, snap.Meta.State.Pages); err != nil {
			continue
		}
		f.extra = append(f.extra, snap)
	}
}

// newPolicy builds the function's policy from its configuration.
func newPolicy(cfg Config) (policy.Policy, error) {
	p, err := policy.Parse(cfg.Policy, uint64(time.Now().UnixNano()))
	if err != nil {
		return nil, fmt.Errorf("policy %q: %w", cfg.Policy, err)
	}
	return p, nil
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
