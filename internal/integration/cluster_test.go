package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// TestClusterTwoWorkers runs two `thaw serve` processes clustered over
// loopback routes and sharing one MinIO: a deploy through one reaches the
// other, which lists and invokes it through its own API; cluster ls shows
// both; a drain and a delete through either take effect on the other; and
// once its peer is killed (no JetStream quorum left in a cluster of two)
// the survivor keeps serving and refuses deploys with 503.
func TestClusterTwoWorkers(t *testing.T) {
	ep := os.Getenv("THAW_TEST_S3_ENDPOINT")
	if ep == "" {
		t.Skip(`THAW_TEST_S3_ENDPOINT not set: eval "$(scripts/minio.sh start)"`)
	}
	s3Env(t)
	routes, err := cluster.LoopbackAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	peers := strings.Join(routes, ",")
	bucket := "thaw-cluster-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	procs := make([]*proc, 2)
	for i, id := range []string{"a", "b"} {
		dir := filepath.Join(t.TempDir(), "data-"+id)
		shareCache(t, dir)
		procs[i] = startServe(t, dir, token, "--node-id", id, "--cluster-listen", routes[i], "--cluster-peers", peers,
			"--s3-endpoint", ep, "--s3-bucket", bucket)
	}
	a, b := procs[0], procs[1]
	defer func() {
		for _, p := range procs {
			if p != nil {
				_ = p.Stop()
			}
		}
	}()
	eventually(t, "both workers in b's cluster view", b, func() bool {
		cl, err := client(b, token).Cluster(context.Background())
		return err == nil && len(cl.Workers) == 2
	})

	want := invokeBody(t, deployAndInvoke(t, a))
	eventually(t, "b lists and serves hello", b, func() bool {
		info, err := client(b, token).Get(context.Background(), "hello")
		return err == nil && info.Name == "hello"
	})
	if got := invoke(t, b, "hello", &api.InvokeRequest{Path: "/?name=cluster"}); string(got.Body) != want {
		t.Fatalf("b answers %q, a %q", got.Body, want)
	}
	// One snapshot for the cluster: b took a's from the shared bucket
	// instead of booting and snapshotting its own.
	ia, errA := client(a, token).Get(context.Background(), "hello")
	ib, errB := client(b, token).Get(context.Background(), "hello")
	if errA != nil || errB != nil || ia.Snapshot == nil || ib.Snapshot == nil || ia.Snapshot.ID != ib.Snapshot.ID {
		t.Fatalf("a's snapshot %+v (%v), b's %+v (%v); want one, a's", ia.Snapshot, errA, ib.Snapshot, errB)
	}

	// cluster ls --json through b: both workers, with hello on both.
	var cl api.Cluster
	eventually(t, "cluster ls shows hello on both workers", b, func() bool {
		code, stdout, _ := cli(t, b, "cluster", "ls", "--json")
		if code != 0 || json.Unmarshal([]byte(stdout), &cl) != nil || len(cl.Workers) != 2 {
			return false
		}
		for _, w := range cl.Workers {
			if w.Address == "" || w.State != api.WorkerReady || len(w.Functions) != 1 || w.Functions[0].Name != "hello" {
				return false
			}
		}
		return true
	})
	if cl.Self != "b" || cl.Workers[0].ID != "a" || cl.Workers[1].ID != "b" {
		t.Fatalf("cluster ls: %+v", cl)
	}

	// Drain b through a.
	if code, out, errOut := cli(t, a, "cluster", "drain", "b"); code != 0 {
		t.Fatalf("cluster drain b: exit %d %s%s", code, out, errOut)
	}
	eventually(t, "b reports draining, with its warm instances released", b, func() bool {
		cl, err := client(b, token).Cluster(context.Background())
		if err != nil || len(cl.Workers) != 2 {
			return false
		}
		w := cl.Workers[1]
		return w.ID == "b" && w.State == api.WorkerDraining && w.Idle == 0
	})
	if code, _, _ := cli(t, a, "cluster", "drain", "nosuchworker"); code != 3 {
		t.Fatalf("drain of an unknown worker: exit %d, want 3 (not found)", code)
	}

	// Delete through b; a drops it.
	if err := client(b, token).Delete(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a drops the deleted function", a, func() bool {
		_, err := client(a, token).Get(context.Background(), "hello")
		return errors.Is(err, errdefs.ErrNotFound)
	})

	// Redeploy through a; b follows again.
	deployAndInvoke(t, a)
	eventually(t, "b serves the redeployed hello", b, func() bool {
		_, err := client(b, token).Get(context.Background(), "hello")
		return err == nil
	})

	// Kill a: b has no quorum left, keeps serving, refuses deploys.
	_ = a.cmd.Process.Kill()
	<-a.done
	procs[0] = nil
	// A request b forwarded to a before it saw a die fails as
	// unavailable (it may have run: forwards are at most once); once b's
	// view has dropped a, b serves itself.
	eventually(t, "b's view drops a", b, func() bool {
		cl, err := client(b, token).Cluster(context.Background())
		if err != nil {
			return false
		}
		for _, w := range cl.Workers {
			if w.ID == "a" && w.State == api.WorkerReady {
				return false
			}
		}
		return true
	})
	if got := invoke(t, b, "hello", &api.InvokeRequest{Path: "/?name=cluster"}); string(got.Body) != want {
		t.Fatalf("b without its peer answers %q", got.Body)
	}
	wasm, _ := module(t, "examples/hello")
	_, err = client(b, token).Deploy(context.Background(), "other", wasm, api.Config{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 503 {
		t.Fatalf("deploy without quorum: %v, want 503\n%s", err, b.Log())
	}
	if _, err := client(b, token).Get(context.Background(), "other"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a refused deploy left a function: %v", err)
	}
}

// deployAndInvoke deploys examples/hello through p and invokes it.
func deployAndInvoke(t *testing.T, p *proc) *api.InvokeResponse {
	t.Helper()
	deploy(t, p, "hello", "examples/hello", api.Config{})
	return invoke(t, p, "hello", &api.InvokeRequest{Path: "/?name=cluster"})
}

func invokeBody(t *testing.T, r *api.InvokeResponse) string {
	t.Helper()
	if r.Status != 200 || len(r.Body) == 0 {
		t.Fatalf("invoke: %d %q", r.Status, r.Body)
	}
	return string(r.Body)
}

// eventually polls cond for up to two minutes (deploys compile on a
// shared machine), failing with p's log.
func eventually(t *testing.T, what string, p *proc, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s\n%s", what, p.Log())
		}
	}
}
