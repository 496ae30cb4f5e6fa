package coord

import (
	"encoding/json"

	"github.com/nats-io/nats.go"

	"github.com/thaw-run/thaw/internal/worker"
)

// Working sets across the cluster.
//
// A follower copies a function's snapshot when the deploy reaches it,
// before any worker has restored it, so the copy has no working set. The
// first worker to restore the function records one and publishes the
// snapshot again with it; the others adopt it (worker.AdoptWorkingSet).
// Adopting on a restore's path costs that restore a read of the store's
// manifest, 3-7 ms against MinIO in the cluster replay, where it made the
// rare functions' cold starts several times slower than a bulk restore.
// So the worker that published announces it, and the others adopt in the
// background, before their next restore.

// WorkingSetSubject carries announcements of snapshots published with a
// working set (a workingSetNote), to every worker.
const WorkingSetSubject = "thaw.workingset"

// workingSetNote is the body of an announcement.
type workingSetNote struct {
	Node     string `json:"node"`
	Function string `json:"function"`
	Snapshot string `json:"snapshot"`
}

// maxAdopting bounds the adoptions a worker runs at once; more
// announcements are dropped (the restore that needs the working set then
// adopts it itself).
const maxAdopting = 2

// Published is worker.Options.Published: it tells the other workers that
// snapshot id of function name is in the store with its working set. Core
// NATS, at most once: a worker that misses it adopts on its next restore.
func (c *Coordinator) Published(name, id string) {
	b, err := json.Marshal(workingSetNote{Node: c.id, Function: name, Snapshot: id})
	if err != nil {
		return
	}
	if err := c.node.Conn.Publish(WorkingSetSubject, b); err != nil {
		c.log.Debug("announcing a working set failed", "function", name, "snapshot", id, "err", err)
	}
}

// serveWorkingSets adopts the working sets other workers announce.
func (c *Coordinator) serveWorkingSets() error {
	sub, err := c.serveBounded(WorkingSetSubject, maxAdopting, func(m *nats.Msg) func() {
		var n workingSetNote
		if json.Unmarshal(m.Data, &n) != nil || n.Node == c.id || worker.ValidName(n.Function) != nil {
			return nil
		}
		return func() {
			if c.Worker.AdoptWorkingSet(c.ctx, n.Function, n.Snapshot) {
				c.log.Debug("adopted an announced working set", "function", n.Function, "snapshot", n.Snapshot, "from", n.Node)
			}
		}
	})
	c.wsSub = sub
	return err
}
