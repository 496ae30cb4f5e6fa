package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/peer"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
)

// readAll reads snapshot id through h under ctx and checks it is want
// (nil: anything).
func readAll(t testing.TB, ctx context.Context, h *stack.Handle, id string, want []byte) {
	t.Helper()
	if got := readCtx(t, ctx, h, id); want != nil && !bytes.Equal(got, want) {
		t.Fatalf("%s read back wrong", id)
	}
}

// tier returns h's counters of tier name.
func tier(h *stack.Handle, name string) store.TierStat {
	for _, ts := range h.Store.TierStats() {
		if ts.Tier == name {
			return ts
		}
	}
	return store.TierStat{}
}

// node starts a NATS node that accepts clients on loopback.
func node(t testing.TB, id string, opts cluster.Options) *cluster.Node {
	t.Helper()
	opts.DataDir, opts.NodeID = t.TempDir(), id
	if opts.ClientListen == "" {
		opts.ClientListen = "127.0.0.1:0"
	}
	n, err := cluster.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// The cluster chunk tier as the pager child opens it (Config.PeerURL, a
// connection of its own): a read naming worker a as a holder gets every
// chunk from a's disk cache and none from the remote; without holders,
// the remote serves as before. The worker's own stack (Config.Peer) asks
// the holders its read names too.
func TestPeerTierReader(t *testing.T) {
	d := t.TempDir()
	sec := storetest.Secret(t)
	cfg := func(name string) stack.Config {
		return stack.Config{Tenant: "t", Secret: sec, Dir: filepath.Join(d, "remote"), CacheDir: filepath.Join(d, name), ChunkSize: 4096}
	}
	pub, err := stack.Open(context.Background(), cfg("publisher"))
	if err != nil {
		t.Fatal(err)
	}
	img := put(t, pub, "s")
	pub.Close()

	// Worker a has read the snapshot: its disk cache holds the chunks.
	a, err := stack.Open(context.Background(), cfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, context.Background(), a, "s", img)
	a.Close() // writes the cache fills
	if a, err = stack.Open(context.Background(), cfg("a")); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	n := node(t, "a", cluster.Options{})
	srv, err := peer.Serve(n.Conn, peer.ServerConfig{Node: "a", Source: a.Cache})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// A reader (the pager child's kind) that names a as a holder gets
	// every chunk from a. A peer that does not answer an ask within the
	// client's timeout (100 ms) is skipped for the remote, by design, and
	// on a loaded 2-core machine an ask now and then is late: so up to
	// three fresh readers try, and one must get everything from a.
	chunks := int64(len(img) / 4096)
	var fails []string
	for i := range 3 {
		rc := cfg(fmt.Sprintf("b%d", i))
		rc.PeerURL, rc.PeerNode = n.ClientURL(), "b"
		b, err := stack.OpenReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		served := srv.Stats().Served
		readAll(t, store.WithHolders(context.Background(), []string{"b", "gone", "a"}), b, "s", img)
		p, r := tier(b, "peer"), tier(b, "remote")
		b.Close()
		if p.Hits == chunks && p.Bytes >= int64(len(img)) && r.Bytes < int64(len(img)) && srv.Stats().Served-served == chunks {
			break
		}
		fails = append(fails, fmt.Sprintf("peer %+v, remote %+v, a served %d", p, r, srv.Stats().Served-served))
		if i == 2 {
			t.Fatalf("readers with holders: %s; want %d chunks from the peer, none from the remote", strings.Join(fails, "; "), chunks)
		}
	}
	if len(fails) > 0 {
		t.Logf("readers that fell back to the remote before one did not: %s", strings.Join(fails, "; "))
	}

	c, err := stack.Open(context.Background(), func() stack.Config {
		c := cfg("c")
		c.Peer = stack.PeerTier(n.Conn, "c")
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readAll(t, context.Background(), c, "s", img)
	if p, r := tier(c, "peer"), tier(c, "remote"); p.Hits != 0 || r.Bytes < int64(len(img)) {
		t.Fatalf("worker without holders: peer %+v, remote %+v; want everything from the remote", p, r)
	}
}

// TestMeasurePeerTier measures the bytes workers fetch from the object
// store with and without the cluster chunk tier: three workers, each a
// NATS node of a three-node cluster on loopback routes with its own disk
// cache, sharing one MinIO bucket, restore (read every chunk of) the same
// snapshots one after the other; each names the others as holders, as
// coord.Holders does for workers running the function. It runs only with
// THAW_MEASURE_PEER_OUT (a directory for the raw results) and MinIO
// (THAW_TEST_S3_ENDPOINT).
func TestMeasurePeerTier(t *testing.T) {
	out, ep := os.Getenv("THAW_MEASURE_PEER_OUT"), os.Getenv("THAW_TEST_S3_ENDPOINT")
	if out == "" || ep == "" {
		t.Skip("THAW_MEASURE_PEER_OUT and THAW_TEST_S3_ENDPOINT not set")
	}
	sec := storetest.Secret(t)
	s3cfg := &s3.Config{Endpoint: ep, AccessKey: os.Getenv("THAW_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("THAW_TEST_S3_SECRET_KEY"),
		Bucket: fmt.Sprintf("thaw-peer-measure-%d", time.Now().UnixNano())}
	d := t.TempDir()
	cfg := func(name string) stack.Config {
		return stack.Config{Tenant: "t", Secret: sec, S3: s3cfg, CacheDir: filepath.Join(d, name)}
	}
	ctx := context.Background()
	pub, err := stack.Open(ctx, cfg("publisher"))
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{8 << 20, 16 << 20, 32 << 20}
	var ids []string
	var total int64
	for i, size := range sizes {
		img := make([]byte, size)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := 0; j < len(img); j += 8 {
			v := r.Uint64()
			for k := 0; k < 8 && j+k < len(img); k++ {
				img[j+k] = byte(v >> (8 * k))
			}
		}
		id := fmt.Sprintf("snap%d", i)
		if _, err := pub.Store.Put(ctx, id, []store.FileSource{{Name: "mem.img", Size: int64(size), R: bytes.NewReader(img)}}); err != nil {
			t.Fatal(err)
		}
		ids, total = append(ids, id), total+int64(size)
	}
	if err := pub.Tiered.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pub.Close()

	routes, err := cluster.LoopbackAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"w1", "w2", "w3"}
	var nodes []*cluster.Node
	for i, id := range names {
		nodes = append(nodes, node(t, id, cluster.Options{ClusterListen: routes[i], Peers: routes}))
	}
	type row struct {
		Run         string `json:"run"`
		Worker      string `json:"worker"`
		RemoteBytes int64  `json:"remote_bytes"`
		RemoteHits  int64  `json:"remote_chunks"`
		PeerBytes   int64  `json:"peer_bytes"`
		PeerHits    int64  `json:"peer_chunks"`
		PeerMisses  int64  `json:"peer_misses"`
		Seconds     float64
	}
	var rows []row
	for _, withPeer := range []bool{false, true} {
		run := map[bool]string{false: "without", true: "with"}[withPeer]
		for i, w := range names {
			c := cfg(run + "-" + w)
			if withPeer {
				c.Peer = stack.PeerTier(nodes[i].Conn, w)
			}
			h, err := stack.Open(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			var others []string
			for _, o := range names {
				if o != w {
					others = append(others, o)
				}
			}
			t0 := time.Now()
			for _, id := range ids {
				readAll(t, store.WithHolders(ctx, others), h, id, nil)
			}
			el := time.Since(t0).Seconds()
			p, r := tier(h, "peer"), tier(h, "remote")
			rows = append(rows, row{Run: run, Worker: w, RemoteBytes: r.Bytes, RemoteHits: r.Hits, PeerBytes: p.Bytes, PeerHits: p.Hits, PeerMisses: p.Misses, Seconds: el})
			// Close writes the disk cache's background fills; the
			// worker then serves its cache to the next ones.
			h.Close()
			if !withPeer {
				continue
			}
			if h, err = stack.Open(ctx, cfg(run+"-"+w)); err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			srv, err := peer.Serve(nodes[i].Conn, peer.ServerConfig{Node: w, Source: h.Cache})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "distinct snapshot bytes: %d (%d snapshots)\n%-8s %-4s %14s %8s %14s %8s %8s %8s\n", total, len(ids), "run", "wkr", "remote_bytes", "chunks", "peer_bytes", "chunks", "misses", "seconds")
	sum := map[string]int64{}
	for _, r := range rows {
		fmt.Fprintf(&b, "%-8s %-4s %14d %8d %14d %8d %8d %8.2f\n", r.Run, r.Worker, r.RemoteBytes, r.RemoteHits, r.PeerBytes, r.PeerHits, r.PeerMisses, r.Seconds)
		sum[r.Run] += r.RemoteBytes
	}
	fmt.Fprintf(&b, "object-store bytes, summed over workers: without %d (%.2fx distinct), with %d (%.2fx distinct)\n",
		sum["without"], float64(sum["without"])/float64(total), sum["with"], float64(sum["with"])/float64(total))
	t.Log("\n" + b.String())
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(map[string]any{"distinct_bytes": total, "snapshots": sizes, "rows": rows}, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "peer-tier.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "peer-tier.txt"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
