package coord

import (
	"hash/fnv"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/peer"
)

// The cluster chunk tier (docs/cluster-async.md).
//
// Every worker with a snapshot store serves its disk cache to the others
// (a peer.Server on thaw.chunk.<node>, ServeChunks), and its store asks
// the workers Holders names before the object store: the worker's own
// reads through a peer.Client on the coordinator's connection
// (stack.PeerTier), its pager child's through a connection of its own.

// Holders is worker.Options.Holders: the other live workers that run
// function name, in an order of their own for each function (rendezvous
// hashing of name and worker id), so that the misses of one function go
// to the same few workers, which then hold its chunks.
func (c *Coordinator) Holders(name string) []string {
	select {
	case <-c.joined:
	default:
		return nil
	}
	type cand struct {
		id    string
		score uint64
	}
	var cs []cand
	for _, w := range c.mem.State().Workers {
		if w.ID == c.id {
			continue
		}
		for _, f := range w.Functions {
			if f.Name == name {
				h := fnv.New64a()
				h.Write([]byte(name + "\x00" + w.ID))
				cs = append(cs, cand{w.ID, h.Sum64()})
				break
			}
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].score > cs[j].score })
	out := make([]string, len(cs))
	for i, x := range cs {
		out[i] = x.id
	}
	return out
}

// ServeChunks serves cache, the worker's store disk cache, to the other
// workers' chunk tiers until Close (nil: nothing to serve), and exports
// the server's counters.
func (c *Coordinator) ServeChunks(cache store.Backend) error {
	if cache == nil {
		return nil
	}
	srv, err := peer.Serve(c.node.Conn, peer.ServerConfig{Node: c.id, Source: cache, Logger: c.log})
	if err != nil {
		return err
	}
	c.chunks = srv
	stat := func(f func(peer.ServerStats) int64) func() float64 {
		return func() float64 { return float64(f(srv.Stats())) }
	}
	c.register("chunk tier",
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "thaw_peer_requests_total", Help: "Chunk requests from other workers' chunk tiers."},
			stat(func(s peer.ServerStats) int64 { return s.Requests })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "thaw_peer_served_total", Help: "Chunks served to other workers from the disk cache."},
			stat(func(s peer.ServerStats) int64 { return s.Served })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "thaw_peer_served_bytes_total", Help: "Bytes of chunks served to other workers."},
			stat(func(s peer.ServerStats) int64 { return s.ServedBytes })),
	)
	return nil
}
