package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/cluster"
)

// TestClusterChunkTier: two clustered workers share a MinIO bucket; b,
// restarted without its local snapshot and store cache, restores hello
// from the store and gets chunks from a's disk cache (a published its own
// snapshot of the same module, whose chunks are largely the same): a lazy
// restore's faults are served by b's pager child, which asks a over a NATS
// connection of its own (a's served count grows, b's own peer tier sees
// nothing), and an eager restore in the worker asks a itself.
func TestClusterChunkTier(t *testing.T) {
	ep := os.Getenv("THAW_TEST_S3_ENDPOINT")
	if ep == "" {
		t.Skip(`THAW_TEST_S3_ENDPOINT not set: eval "$(scripts/minio.sh start)"`)
	}
	storeSecret(t)
	t.Setenv("THAW_S3_ACCESS_KEY", os.Getenv("THAW_TEST_S3_ACCESS_KEY"))
	t.Setenv("THAW_S3_SECRET_KEY", os.Getenv("THAW_TEST_S3_SECRET_KEY"))
	routes, err := cluster.LoopbackAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	bucket := "thaw-chunk-tier-" + strings.ToLower(t.Name())
	args := func(i int, id string) []string {
		return []string{"--node-id", id, "--cluster-listen", routes[i], "--cluster-peers", strings.Join(routes, ","), "--s3-endpoint", ep, "--s3-bucket", bucket}
	}
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a := startServe(t, dirA, token, args(0, "a")...)
	defer a.Stop()
	b := startServe(t, dirB, token, args(1, "b")...)
	defer func() { _ = b.Stop() }()
	// A worker listens before it has joined the cluster's registry, and
	// refuses deploys until then (a full run once deployed too early).
	eventually(t, "both workers in a's cluster view", a, func() bool {
		cl, err := client(a, token).Cluster(context.Background())
		return err == nil && len(cl.Workers) == 2
	})
	deploy(t, a, "hello", "examples/hello", api.Config{})
	// a publishes its snapshot; b, a follower, takes that one from the
	// store (Worker.DeployStored) rather than publishing its own.
	eventually(t, "hello published", a, func() bool { return metric(t, a, "thaw_store_publishes_total", `outcome="ok"`) >= 1 })
	eventually(t, "b deploys hello", b, func() bool {
		_, err := client(b, token).Get(context.Background(), "hello")
		return err == nil
	})
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	dropLocal(t, dirB, "hello")
	b = startServe(t, dirB, token, args(1, "b")...)
	eventually(t, "b sees a running hello", b, func() bool {
		cl, err := client(b, token).Cluster(context.Background())
		return err == nil && len(cl.Workers) == 2 && len(cl.Workers[0].Functions) == 1
	})

	served := metric(t, a, "thaw_peer_served_total")
	want := invokeBody(t, invoke(t, a, "hello", &api.InvokeRequest{Path: "/?name=peer"}))
	got := invoke(t, b, "hello", &api.InvokeRequest{Path: "/?name=peer", Mode: api.Mode("lazy")})
	if string(got.Body) != want {
		t.Fatalf("lazy restore on b: %d %q, want %q\n%s", got.Status, got.Body, want, b.Log())
	}
	// Server-Timing names the tiers the pager child's faults read from.
	if tm := timing(t, got); tm.StoreBytes["peer"] == 0 || !strings.HasPrefix(tm.Snapshot, "store-") {
		t.Fatalf("lazy restore on b: snapshot %q, store bytes %v; want bytes from the peer", tm.Snapshot, tm.StoreBytes)
	}
	if now := metric(t, a, "thaw_peer_served_total"); now <= served {
		t.Fatalf("a served %v chunks before b's lazy restore and %v after\n%s", served, now, b.Log())
	}
	if n := metric(t, b, "thaw_store_tier_hits_total", `tier="peer"`); n != 0 {
		t.Fatalf("b's worker process read %v chunks from peers in a lazy restore (its pager child should have)", n)
	}
	got = invoke(t, b, "hello", &api.InvokeRequest{Path: "/?name=peer", Mode: api.Mode("eager")})
	if string(got.Body) != want {
		t.Fatalf("eager restore on b: %d %q", got.Status, got.Body)
	}
	if n := metric(t, b, "thaw_store_tier_hits_total", `tier="peer"`); n == 0 {
		t.Fatalf("b's eager restore read no chunk from a\n%s", b.Log())
	}
	if tm := timing(t, got); tm.StoreBytes["peer"] == 0 {
		t.Fatalf("eager restore on b: snapshot %q, store bytes %v; want bytes from the peer", tm.Snapshot, tm.StoreBytes)
	}
	// Everything is in b's caches now.
	got = invoke(t, b, "hello", &api.InvokeRequest{Path: "/?name=peer", Mode: api.Mode("eager")})
	if tm := timing(t, got); tm.Snapshot != "store-cache" || tm.StoreBytes["cache"] == 0 || tm.StoreBytes["peer"]+tm.StoreBytes["remote"] != 0 {
		t.Fatalf("second eager restore on b: snapshot %q, store bytes %v; want b's caches only", tm.Snapshot, tm.StoreBytes)
	}
}

// timing parses res's Server-Timing header.
func timing(t *testing.T, res *api.InvokeResponse) api.Timing {
	t.Helper()
	tm, err := api.ParseTiming(res.Header.Get("Server-Timing"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Server-Timing: %s", res.Header.Get("Server-Timing"))
	return tm
}
