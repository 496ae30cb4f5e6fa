package integration

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// servedBy reads the Server-Timing entries a cluster adds: the worker that
// served, the placement rule, and where the instance came from.
func servedBy(t *testing.T, r *api.InvokeResponse) (worker, rule, snapshot string) {
	t.Helper()
	w, _ := r.Metric("worker")
	p, _ := r.Metric("placement")
	s, ok := r.Metric("snapshot")
	if !ok {
		t.Fatalf("no snapshot entry in Server-Timing %q", r.Header.Get(api.HeaderServerTiming))
	}
	return w.Desc, p.Desc, s.Desc
}

// idleOn is worker id's idle instances of fn in p's cluster view (-1: not
// there).
func idleOn(p *proc, id, fn string) int {
	cl, err := client(p, token).Cluster(context.Background())
	if err != nil {
		return -1
	}
	for _, w := range cl.Workers {
		if w.ID != id {
			continue
		}
		for _, f := range w.Functions {
			if f.Name == fn && w.State == api.WorkerReady {
				return f.Idle
			}
		}
	}
	return -1
}

// TestClusterPlacement: two `thaw serve` processes and a `thaw gateway` on
// loopback. A call entering at the worker without a warm instance lands on
// the one that has it warm, and Server-Timing says so; the gateway places
// on the warm worker too; both count it in /metrics.
func TestClusterPlacement(t *testing.T) {
	addrs, err := cluster.LoopbackAddrs(3)
	if err != nil {
		t.Fatal(err)
	}
	routes := addrs[:2]
	procs := make([]*proc, 0, 3)
	defer func() {
		for _, p := range procs {
			_ = p.Stop()
		}
	}()
	for i, id := range []string{"a", "b"} {
		dir := filepath.Join(t.TempDir(), "data-"+id)
		shareCache(t, dir)
		extra := []string{"--node-id", id, "--cluster-listen", routes[i], "--cluster-peers", strings.Join(routes, ",")}
		if id == "a" {
			extra = append(extra, "--nats-listen", addrs[2])
		}
		procs = append(procs, startServe(t, dir, token, extra...))
	}
	a, b := procs[0], procs[1]
	eventually(t, "both workers in b's view", b, func() bool {
		cl, err := client(b, token).Cluster(context.Background())
		return err == nil && len(cl.Workers) == 2
	})
	deploy(t, a, "hello", "examples/hello", api.Config{})
	eventually(t, "b runs hello", b, func() bool { return idleOn(b, "b", "hello") >= 0 })

	// Drain b and undo it: b's warm instances are released, a keeps the
	// one its deploy booted.
	drain := func(args ...string) {
		if code, out, errOut := cli(t, a, append([]string{"cluster", "drain"}, args...)...); code != 0 {
			t.Fatalf("cluster drain %v: exit %d %s%s", args, code, out, errOut)
		}
	}
	drain("b")
	eventually(t, "b drained of warm instances", b, func() bool {
		cl, err := client(b, token).Cluster(context.Background())
		return err == nil && len(cl.Workers) == 2 && cl.Workers[1].State == api.WorkerDraining && cl.Workers[1].Idle == 0
	})
	drain("--undo", "b")
	eventually(t, "b sees a warm and itself cold and ready", b, func() bool {
		return idleOn(b, "a", "hello") >= 1 && idleOn(b, "b", "hello") == 0
	})

	for i := range 2 {
		r := invoke(t, b, "hello", &api.InvokeRequest{Path: "/?name=placed"})
		w, rule, snap := servedBy(t, r)
		if w != "a" || rule != "peer-warm" || snap != "warm" || r.Start != "warm" {
			t.Fatalf("call %d through b: served by %q (%s, snapshot %s, start %s), want a's warm instance\n%s", i, w, rule, snap, r.Start, b.Log())
		}
		eventually(t, "a warm again in b's view", b, func() bool { return idleOn(b, "a", "hello") >= 1 })
	}
	_, _, body := raw(t, "GET", b.URL+"/metrics", token, nil, nil)
	if !strings.Contains(string(body), `thaw_placements_total{outcome="forwarded",policy="locality"} 2`) {
		t.Errorf("b's /metrics lacks its 2 forwarded placements:\n%s", grepLines(string(body), "thaw_placements"))
	}

	// The gateway joins through a's NATS and places on a, too.
	gwDir := filepath.Join(t.TempDir(), "gateway")
	gw := startThaw(t, thawBin, gwDir, "gateway", "--addr", "127.0.0.1:0", "--data", gwDir, "--token", token,
		"--nats-url", "nats://"+addrs[2], "--node-id", "gw")
	procs = append(procs, gw)
	eventually(t, "the gateway sees both workers and hello", gw, func() bool {
		cl, err := client(gw, token).Cluster(context.Background())
		_, gerr := client(gw, token).Get(context.Background(), "hello")
		return err == nil && len(cl.Workers) == 2 && gerr == nil && idleOn(gw, "a", "hello") >= 1
	})
	r := invoke(t, gw, "hello", &api.InvokeRequest{Path: "/?name=gateway"})
	if w, rule, _ := servedBy(t, r); w != "a" || rule != "peer-warm" || !strings.Contains(string(r.Body), "gateway") {
		t.Fatalf("through the gateway: served by %q (%s): %q\n%s", w, rule, r.Body, gw.Log())
	}
	_, _, body = raw(t, "GET", gw.URL+"/metrics", token, nil, nil)
	if !strings.Contains(string(body), `thaw_placements_total{outcome="forwarded",policy="locality"} 1`) {
		t.Errorf("the gateway's /metrics lacks its forwarded placement:\n%s", grepLines(string(body), "thaw_placements"))
	}
	// Deploys through the gateway run on a worker; deletions reach every
	// worker.
	_, path := module(t, "examples/hello")
	if code, out, errOut := cli(t, gw, "deploy", "viagw", path); code != 0 {
		t.Fatalf("thaw deploy through the gateway: exit %d %s%s\n%s", code, out, errOut, gw.Log())
	}
	for _, p := range procs[:2] {
		eventually(t, "the workers deploy viagw", p, func() bool { _, err := client(p, token).Get(context.Background(), "viagw"); return err == nil })
	}
	if r := invoke(t, gw, "viagw", &api.InvokeRequest{Path: "/?name=gw"}); !strings.Contains(string(r.Body), "gw") {
		t.Fatalf("viagw through the gateway: %q", r.Body)
	}
	if _, err := client(gw, token).Deploy(context.Background(), "x", []byte("\x00asm"), api.Config{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("a malformed module through the gateway: %v, want invalid", err)
	}
	if code, out, errOut := cli(t, gw, "rm", "viagw"); code != 0 {
		t.Fatalf("thaw rm through the gateway: exit %d %s%s", code, out, errOut)
	}
	for _, p := range procs[:2] {
		eventually(t, "the workers delete viagw", p, func() bool {
			_, err := client(p, token).Get(context.Background(), "viagw")
			return errors.Is(err, errdefs.ErrNotFound)
		})
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
