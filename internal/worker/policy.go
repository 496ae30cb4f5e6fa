package worker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/thaw-run/thaw/internal/atomicfile"
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
func (c *checkpointer) candidates() ([]policy.Candidate, []*snapshot.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var snaps []*snapshot.Snapshot
	if c.snap != nil {
		snaps = append(snaps, c.snap)
	}
	snaps = append(snaps, c.extra...)
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
func (c *checkpointer) choose(explicit bool) (snap *snapshot.Snapshot, cold bool) {
	cands, snaps := c.candidates()
	if explicit || c.pol == nil || len(snaps) == 0 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.snap, false
	}
	c.polMu.Lock()
	i := c.pol.Choose(cands)
	c.polMu.Unlock()
	if i == policy.Cold || i < 0 || i >= len(snaps) {
		return nil, true
	}
	return snaps[i], false
}

// withPolicy sets an instance's request numbering and checkpoint.
func (c *checkpointer) withPolicy(inst *instance) *instance {
	inst.startReq = 1
	if inst.snap != nil {
		inst.startReq = inst.snap.Meta.Request + 1
	}
	if c.pol != nil {
		c.polMu.Lock()
		inst.checkpointAt = c.pol.CheckpointAt(inst.startReq)
		c.polMu.Unlock()
	}
	return inst
}

// afterExec feeds the policy and reports whether the policy's checkpoint
// request has just been served, so the instance must be snapshotted.
func (c *checkpointer) afterExec(inst *instance, latency time.Duration) (checkpointDue bool) {
	if c.pol == nil || inst.Dead() {
		return false
	}
	req := inst.startReq + inst.served - 1
	c.polMu.Lock()
	c.pol.Observe(req, latency)
	c.polMu.Unlock()
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
func (c *checkpointer) claimCheckpoint(req int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[req] || (c.snap != nil && c.snap.Meta.Request == req) {
		return false
	}
	for _, s := range c.extra {
		if s.Meta.Request == req {
			return false
		}
	}
	if c.pending == nil {
		c.pending = map[int]bool{}
	}
	c.pending[req] = true
	return true
}

// prune keeps the pool within pool_size (or the policy's own, smaller,
// pool); the initialisation snapshot is always kept.
func (c *checkpointer) prune() {
	capacity := c.rec.Config.PoolSize
	if ps, ok := c.pol.(policy.PoolSizer); ok {
		capacity = min(capacity, ps.PoolSize())
	}
	cands, snaps := c.candidates()
	if len(snaps) <= capacity {
		return
	}
	c.polMu.Lock()
	keepIdx := c.pol.Prune(cands, capacity)
	c.polMu.Unlock()
	keep := map[string]bool{}
	if c.snap != nil {
		keep[c.snap.Meta.ID] = true
	}
	for _, i := range keepIdx {
		if i >= 0 && i < len(snaps) && len(keep) < capacity {
			keep[snaps[i].Meta.ID] = true
		}
	}
	var drop []*snapshot.Snapshot
	c.mu.Lock()
	kept := c.extra[:0]
	for _, s := range c.extra {
		if keep[s.Meta.ID] {
			kept = append(kept, s)
		} else {
			drop = append(drop, s)
		}
	}
	c.extra = kept
	c.mu.Unlock()
	var ids []string
	for _, s := range drop {
		ids = append(ids, s.Meta.ID)
	}
	c.w.snapStore.drop(c.rec.Name, ids)
	for _, s := range drop {
		// Instances restored from a dropped snapshot keep running: their
		// memory is already theirs (eager, bulk) or mapped (mmap, lazy:
		// an unlinked file stays readable while open).
		_ = os.RemoveAll(s.Dir)
	}
}

// savePolicy persists the policy state and the pool.
func (c *checkpointer) savePolicy() {
	if c.pol == nil {
		return
	}
	c.polMu.Lock()
	state, err := c.pol.MarshalState()
	c.polMu.Unlock()
	if err != nil {
		return
	}
	rec := policyRecord{State: state, Deployed: c.rec.Deployed}
	c.mu.Lock()
	for _, s := range c.extra {
		rec.Extra = append(rec.Extra, filepath.Base(s.Dir))
	}
	c.mu.Unlock()
	b, err := json.Marshal(rec)
	if err == nil {
		err = writeAtomic(filepath.Join(c.w.fnDir(c.rec.Name), policyFile), b, nil)
	}
	if err != nil {
		c.w.log.Warn("saving policy state failed", "function", c.rec.Name, "err", err)
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

// loadPolicy restores the policy state and pool saved by savePolicy;
// open opens a pool snapshot by id.
func (c *checkpointer) loadPolicy(open func(id string) (*snapshot.Snapshot, error)) {
	b, err := atomicfile.ReadFile(filepath.Join(c.w.fnDir(c.rec.Name), policyFile), maxPolicyBytes)
	if err != nil {
		if !os.IsNotExist(err) {
			c.w.log.Warn("policy state unreadable; starting afresh", "function", c.rec.Name, "err", err)
		}
		return
	}
	rec, err := decodePolicyRecord(b)
	if err != nil {
		c.w.log.Warn("policy state unreadable; starting afresh", "function", c.rec.Name, "err", err)
		return
	}
	if !rec.Deployed.IsZero() && !rec.Deployed.Equal(c.rec.Deployed) {
		c.w.log.Info("policy state of a previous deploy removed", "function", c.rec.Name)
		_ = os.Remove(filepath.Join(c.w.fnDir(c.rec.Name), policyFile))
		return
	}
	if len(rec.State) > 0 {
		if err := c.pol.UnmarshalState(rec.State); err != nil {
			c.w.log.Warn("policy state unreadable; starting afresh", "function", c.rec.Name, "err", err)
		}
	}
	for _, id := range rec.Extra {
		snap, err := open(id)
		if err != nil {
			c.w.log.Warn("dropping unusable pool snapshot", "function", c.rec.Name, "snapshot", id, "err", err)
			continue
		}
		if err := c.mod.PrepareRestore(c.w.ctx, snap.Meta.State.Pages); err != nil {
			continue
		}
		c.extra = append(c.extra, snap)
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
