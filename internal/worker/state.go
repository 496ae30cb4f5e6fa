package worker

import (
	"os"
	"sort"

	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// FunctionState is what the cluster is told about one function on this
// worker (internal/membership): its instances, its queue, and where its
// snapshot is.
type FunctionState struct {
	Name string
	// ModuleSHA and Config identify what is deployed.
	ModuleSHA string
	Config    Config
	// Idle and Busy count instances; Queued the requests waiting for one.
	Idle, Busy, Queued int
	// Snapshot is the id new instances restore from ("" none);
	// SnapshotLocal whether its directory is on this worker's disk;
	// WorkingSet whether it has a recorded working set.
	Snapshot      string
	SnapshotLocal bool
	WorkingSet    bool
	// Cached is the fraction (0 to 1, rounded down to a hundredth) of the
	// bytes a restore of the snapshot reads from the snapshot store, in
	// the function's restore mode, that the store's disk cache holds
	// (cached.go): 1 means such a restore reads no object store. 0
	// without a store, a disk cache, or a stored copy of the snapshot.
	Cached float64
}

// States describes every function's state, sorted by name. It takes each
// function's pool and checkpointer locks briefly and stats one directory
// per function: for a publisher polling a few times a second, never for
// the invocation path.
func (w *Worker) States() []FunctionState {
	fns := w.functions()
	out := make([]FunctionState, 0, len(fns))
	for _, f := range fns {
		idle, total := f.pool.counts()
		st := FunctionState{Name: f.rec.Name, ModuleSHA: f.rec.ModuleSHA, Config: f.rec.Config, Idle: idle, Busy: total - idle,
			Queued: f.pool.queuedCount()}
		f.ckpt.mu.Lock()
		snap := f.ckpt.snap
		f.ckpt.mu.Unlock()
		if snap != nil {
			st.Snapshot = snap.Meta.ID
			_, err := os.Stat(snap.Dir)
			st.SnapshotLocal = err == nil
			_, err = os.Stat(snap.Path(snapshot.WSMetaFile))
			st.WorkingSet = err == nil
			if s, ok := w.snapStore.(*workerStore); ok {
				st.Cached = s.cached.fraction(storesnap.ID(f.rec.Name, snap.Meta.ID))
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Memory returns the worker's memory budget and what instances and
// pooled regions hold of it.
func (w *Worker) Memory() (budget, used uint64) { return w.budget.total, w.budget.used() }

// Module returns the module function name runs, checked against its hash
// (for the cluster registry to adopt a function deployed before it).
func (w *Worker) Module(name string) ([]byte, error) {
	f, err := w.lookup(name)
	if err != nil {
		return nil, err
	}
	return w.readModule(f.rec)
}
