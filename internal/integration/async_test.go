package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/cluster"
)

// TestAsyncServe drives asynchronous invocations through the real binary
// on one node: `thaw invoke --async` prints an id at once, `thaw result`
// says the slow invocation is not done yet (exit 7), `thaw result --wait`
// prints its body, and the worker's metrics count it.
func TestAsyncServe(t *testing.T) {
	p := startServe(t, t.TempDir(), token)
	defer p.Stop()
	deploy(t, p, "slow", "examples/faulty", api.Config{})
	code, out, errOut := cli(t, p, "invoke", "--async", "slow", "/spin?ms=1500")
	id := strings.TrimSpace(out)
	if code != 0 || id == "" {
		t.Fatalf("invoke --async: exit %d %q %s", code, out, errOut)
	}
	if code, out, _ := cli(t, p, "result", id); code != 7 || out != "" {
		t.Fatalf("result of a running invocation: exit %d %q, want 7 and nothing printed", code, out)
	}
	if code, out, errOut := cli(t, p, "result", "--wait", id); code != 0 || out != "spun\n" {
		t.Fatalf("result --wait: exit %d %q %s\n%s", code, out, errOut, p.Log())
	}
	if code, _, _ := cli(t, p, "result", "nosuchid"); code != 3 {
		t.Fatalf("result of an unknown id: exit %d, want 3", code)
	}
	_, _, body := raw(t, "GET", p.URL+"/metrics", token, nil, nil)
	for _, want := range []string{"\nthaw_async_done_total 1\n", "\nthaw_async_enqueued_total 1\n", "\nthaw_async_queued 0\n", "\nthaw_async_running 0\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}

// TestAsyncWorkerKilled: in a two-worker loopback cluster (b a NATS client
// of a's embedded server, so that the queue outlives b), an asynchronous
// invocation running on b when b is killed is run again by a after the
// ack wait, and its result arrives.
func TestAsyncWorkerKilled(t *testing.T) {
	addrs, err := cluster.LoopbackAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	a := startServe(t, filepath.Join(t.TempDir(), "a"), token, "--node-id", "a", "--nats-listen", addrs[0], "--async-ack-wait", "3s")
	defer a.Stop()
	b := startServe(t, filepath.Join(t.TempDir(), "b"), token, "--node-id", "b", "--nats-url", "nats://"+addrs[0], "--async-ack-wait", "3s")
	defer func() { _ = b.cmd.Process.Kill() }()
	deploy(t, a, "slow", "examples/faulty", api.Config{})
	eventually(t, "b deploys slow", b, func() bool {
		_, err := client(b, token).Get(context.Background(), "slow")
		return err == nil
	})
	// a drains, so b's runner takes the invocation.
	if code, out, errOut := cli(t, a, "cluster", "drain", "a"); code != 0 {
		t.Fatalf("drain a: exit %d %s%s", code, out, errOut)
	}
	eventually(t, "a reports draining", a, func() bool {
		cl, err := client(a, token).Cluster(context.Background())
		return err == nil && len(cl.Workers) == 2 && cl.Workers[0].State == api.WorkerDraining
	})
	// A fetch a's runner asked for before it saw the drain may still
	// deliver for up to its poll (250 ms: JetStream keeps a pull request
	// until it expires, cancelled or not), and a draining worker runs
	// what it took. Let such a fetch end first.
	time.Sleep(2 * time.Second)
	acc, err := client(a, token).InvokeAsync(context.Background(), "slow", &api.InvokeRequest{Path: "/spin?ms=8000"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last state of the invocation: %s\na's log:\n%s", last, a.Log())
		}
	}()
	eventually(t, "b runs the invocation", b, func() bool {
		res, err := client(a, token).AsyncResult(context.Background(), acc.ID)
		last = fmt.Sprintf("%+v, %v", res, err)
		return err == nil && res.State == api.AsyncRunning && res.Worker == "b"
	})
	_ = b.cmd.Process.Kill()
	<-b.done
	if code, out, errOut := cli(t, a, "cluster", "drain", "--undo", "a"); code != 0 {
		t.Fatalf("undrain a: exit %d %s%s", code, out, errOut)
	}
	code, out, errOut := cli(t, a, "result", "--wait", "--json", acc.ID)
	var res api.AsyncResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("result --wait: exit %d %q %s\n%s", code, out, errOut, a.Log())
	}
	if res.State != api.AsyncDone || res.Worker != "a" || res.Attempts != 2 || string(res.Body) != "spun\n" {
		t.Fatalf("result after b was killed: %+v", res)
	}
}
