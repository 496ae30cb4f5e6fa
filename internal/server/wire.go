package server

import (
	"strconv"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/membership"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/worker"
)

// This file is the one place where the worker's types become the API's
// (internal/api) and back.

// workerConfig is a deploy's configuration as the worker takes it.
func workerConfig(c api.Config) worker.Config { return worker.Config(c) }

// functionInfo describes a function on the wire.
func functionInfo(in worker.Info) api.FunctionInfo {
	out := api.FunctionInfo{Name: in.Name, Config: api.Config(in.Config), ModuleSHA: in.ModuleSHA, ModuleSize: in.ModuleSize,
		Deployed: in.Deployed, Idle: in.Idle, Busy: in.Busy, PoolSnapshots: in.PoolSnapshots, Policy: in.Policy}
	if s := in.Snapshot; s != nil {
		out.Snapshot = &api.SnapshotInfo{ID: s.ID, MemoryBytes: s.MemoryBytes, DataBytes: s.DataBytes, WSBytes: s.WSBytes}
	}
	return out
}

// functionList describes functions on the wire, in their order.
func functionList(in []worker.Info) api.FunctionList {
	out := api.FunctionList{Functions: make([]api.FunctionInfo, 0, len(in))}
	for _, i := range in {
		out.Functions = append(out.Functions, functionInfo(i))
	}
	return out
}

// ServerTiming formats t as a Server-Timing header value
// (api.FormatServerTiming): queue, start and exec durations in
// milliseconds, the start's kind in start's description, and for restores
// the map and prefetch stages and the fault and working-set counts as
// description-only metrics.
func ServerTiming(t worker.Timing) string {
	ms := make([]api.Metric, 0, 12)
	metric := func(name string, d time.Duration, desc string) {
		ms = append(ms, api.Metric{Name: name, Dur: float64(d) / float64(time.Millisecond), HasDur: true, Desc: desc})
	}
	count := func(name string, n int64) {
		ms = append(ms, api.Metric{Name: name, Desc: strconv.FormatInt(n, 10)})
	}
	desc := t.StartKind
	if t.StartKind == "restore" {
		desc = "restore:" + string(t.Mode)
	}
	metric("queue", t.Queue, "")
	metric("start", t.Start, desc)
	metric("exec", t.Exec, "")
	if t.StartKind == "cold" && t.Init > 0 {
		metric("instantiate", t.Instantiate, "")
		metric("init", t.Init, "")
	}
	if t.Restore != nil {
		metric("map", t.Restore.Map, "")
		metric("prefetch", t.Restore.Prefetch, "")
		metric("instantiate", t.Instantiate, "")
		count("faults", t.Restore.Faults)
		count("ws", t.Restore.WSBytes)
		count("read", t.Restore.BytesRead)
		if t.Restore.Reused {
			// The region came from the pool: pages kept live.
			count("reused", t.Restore.Scrub.Kept)
		}
		if t.Source != "" {
			// local: the snapshot directory; store: the snapshot store.
			ms = append(ms, api.Metric{Name: "source", Desc: t.Source})
		}
		// The store's chunks by the tier that served them (bytes).
		for _, c := range []struct {
			tier string
			n    int64
		}{{store.TierCache, t.Restore.Store.Cache}, {store.TierPeer, t.Restore.Store.Peer}, {store.TierRemote, t.Restore.Store.Remote}} {
			if c.n > 0 {
				count(api.StoreReadPrefix+c.tier, c.n)
			}
		}
	}
	ms = append(ms, api.Metric{Name: "snapshot", Desc: snapshotFrom(t)})
	if t.Worker != "" {
		// In a cluster: who served, and which placement rule chose it.
		ms = append(ms, api.Metric{Name: "worker", Desc: t.Worker})
		if t.Placement != "" {
			ms = append(ms, api.Metric{Name: "placement", Desc: t.Placement})
		}
	}
	return api.FormatServerTiming(ms)
}

// snapshotFrom says where the instance that served came from: warm (no
// snapshot read), local (the worker's snapshot directory), store-cache,
// store-peer or store-remote (the snapshot store, by the class of tier
// that served the most of the restore's chunks: this worker's caches, a
// peer's disk cache, the object store; store-cache when none served any,
// e.g. an mmap restore of an image materialised before) or cold (a cold
// boot, no snapshot).
func snapshotFrom(t worker.Timing) string {
	switch {
	case t.StartKind == "restore" && t.Source == worker.SourceStore:
		tier := store.TierCache
		if t.Restore != nil && t.Restore.Store.Most() != "" {
			tier = t.Restore.Store.Most()
		}
		return t.Source + "-" + tier
	case t.StartKind == "restore" && t.Source != "":
		return t.Source
	case t.StartKind == "restore":
		return worker.SourceLocal
	case t.StartKind == "":
		return "unknown"
	}
	return t.StartKind
}

// clusterInfo describes the cluster on the wire.
func clusterInfo(self string, st membership.State) api.Cluster {
	out := api.Cluster{Self: self, Workers: make([]api.ClusterWorker, 0, len(st.Workers))}
	for _, w := range st.Workers {
		cw := api.ClusterWorker{ID: w.ID, Address: w.Address, State: api.WorkerReady, Slots: w.Slots, MemoryBytes: w.MemoryBytes,
			MemoryUsed: w.MemoryUsed, Started: w.Started, Functions: make([]api.ClusterFunction, 0, len(w.Functions))}
		if w.Draining {
			cw.State = api.WorkerDraining
		}
		for _, f := range w.Functions {
			cw.Idle, cw.Busy, cw.Queued = cw.Idle+f.Idle, cw.Busy+f.Busy, cw.Queued+f.Queued
			cw.Functions = append(cw.Functions, f)
		}
		out.Workers = append(out.Workers, cw)
	}
	return out
}
