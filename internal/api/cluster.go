package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Cluster is GET /v1/cluster: the workers of the cluster as the answering
// worker sees them.
type Cluster struct {
	// Self is the id of the worker that answered.
	Self string `json:"self"`
	// Workers are the live workers, sorted by id.
	Workers []ClusterWorker `json:"workers"`
}

// Worker states in ClusterWorker.State.
const (
	WorkerReady    = "ready"
	WorkerDraining = "draining"
)

// ClusterWorker is one worker of a Cluster.
type ClusterWorker struct {
	ID string `json:"id"`
	// Address is the HTTP HOST:PORT peers reach the worker at.
	Address string `json:"address"`
	// State is WorkerReady or WorkerDraining.
	State string `json:"state"`
	// Slots is how many instances of the default memory size fit in the
	// worker's memory budget (MemoryBytes); MemoryUsed is what instances
	// and pooled regions hold of it.
	Slots       int       `json:"slots"`
	MemoryBytes uint64    `json:"memory_bytes"`
	MemoryUsed  uint64    `json:"memory_used"`
	Started     time.Time `json:"started"`
	// Idle, Busy and Queued sum the worker's functions' counts.
	Idle   int `json:"idle"`
	Busy   int `json:"busy"`
	Queued int `json:"queued"`
	// Functions is each deployed function's state on the worker.
	Functions []ClusterFunction `json:"functions"`
}

// ClusterFunction is a function's state on one worker.
type ClusterFunction struct {
	Name string `json:"name"`
	// Generation is the registry generation the worker runs (0: not yet
	// confirmed by the registry).
	Generation uint64 `json:"generation"`
	Idle       int    `json:"idle"`
	Busy       int    `json:"busy"`
	Queued     int    `json:"queued"`
	// Snapshot is the snapshot new instances restore from; SnapshotLocal
	// whether it is on the worker's disk (else in the shared store);
	// WorkingSet whether it has a recorded working set.
	Snapshot      string `json:"snapshot,omitempty"`
	SnapshotLocal bool   `json:"snapshot_local"`
	WorkingSet    bool   `json:"working_set"`
	// SnapshotCached: every chunk a restore of the snapshot reads from the
	// snapshot store (in the function's restore mode: the working set's
	// for reap and bulk) is in the worker's store disk cache, so such a
	// restore reads no object store. Cached is the fraction of those
	// bytes the cache holds (0 to 1, rounded down to a hundredth).
	SnapshotCached bool    `json:"snapshot_cached"`
	Cached         float64 `json:"cached"`
}

// Cluster describes the cluster (GET /v1/cluster).
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var cl Cluster
	if err := c.getJSON(ctx, "/v1/cluster", &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// Drain asks worker node to drain (POST /v1/cluster/drain/NODE), or with
// on false to take placements again (DELETE).
func (c *Client) Drain(ctx context.Context, node string, on bool) error {
	method := http.MethodPost
	if !on {
		method = http.MethodDelete
	}
	req, err := c.newRequest(ctx, method, "/v1/cluster/drain/"+url.PathEscape(node), nil)
	if err != nil {
		return err
	}
	_, _, err = c.do(req)
	return err
}
