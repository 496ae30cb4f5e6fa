package coord

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/membership"
	"github.com/thaw-run/thaw/internal/placement"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/testwasm"
	"github.com/thaw-run/thaw/internal/worker"
)

func helloRequest() *abi.Request {
	return &abi.Request{Method: "GET", Path: "/", Header: http.Header{}}
}

// waitFor polls cond for up to three minutes (deploys compile on a machine
// shared with other work).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// fnIn is function fn's state on worker id in st.
func fnIn(st membership.State, id, fn string) (membership.Function, bool) {
	w, ok := st.Worker(id)
	if !ok {
		return membership.Function{}, false
	}
	for _, f := range w.Functions {
		if f.Name == fn {
			return f, true
		}
	}
	return membership.Function{}, false
}

// idleIn waits until viewer sees the given idle counts of fn (by worker).
func idleIn(t *testing.T, viewer interface{ State() membership.State }, fn string, want map[string]int) {
	t.Helper()
	waitFor(t, "the view's idle counts", func() bool {
		st := viewer.State()
		for id, n := range want {
			if f, ok := fnIn(st, id, fn); !ok || f.Idle != n {
				return false
			}
		}
		return true
	})
}

// placements reads thaw_placements_total{outcome} from reg.
func placements(t *testing.T, reg prometheus.Gatherer, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "thaw_placements_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// pair starts workers a (embedded NATS) and b (a client of a's) with the
// locality policy, deploys hello (and the other names, idempotent if
// asked) through a, and waits until both run them.
func pair(t *testing.T, names map[string]bool) (a, b *Coordinator) {
	t.Helper()
	wasm := testwasm.Build(t, "examples/hello")
	a = start(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "a", ClientListen: "127.0.0.1:0"},
		Placement: placement.New(placement.Locality, placement.Options{}, 1)})
	b = start(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "b", URL: a.Node().ClientURL()},
		Placement: placement.New(placement.Locality, placement.Options{}, 1)})
	ctx := context.Background()
	for name, idem := range names {
		if _, err := a.Deploy(ctx, name, wasm, worker.Config{Idempotent: idem}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "b deploys "+name, func() bool { _, err := b.Get(name); return err == nil })
	}
	waitFor(t, "both workers in both views", func() bool { return len(a.State().Workers) == 2 && len(b.State().Workers) == 2 })
	return a, b
}

// TestPlacementWarmAffinityAndDrain: an invocation entering at a worker
// without an idle instance is forwarded to the peer that has one
// (peer-warm) and names it, unless it names a restore mode (pinned: the
// receiver serves it); with no idle instance anywhere the receiver
// restores its own copy (peer-cached); a draining worker gets nothing new,
// refuses forwards, and passes on what it receives itself.
func TestPlacementWarmAffinityAndDrain(t *testing.T) {
	a, b := pair(t, map[string]bool{"hello": false})
	ctx := context.Background()
	if _, err := a.Worker.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Evict(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	idleIn(t, b, "hello", map[string]int{"a": 1, "b": 0})
	res, err := b.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{})
	if err != nil || res.Response.Status != 200 {
		t.Fatalf("invoke through b: %+v, %v", res, err)
	}
	if res.Timing.Worker != "a" || res.Timing.Placement != "peer-warm" || res.Timing.StartKind != "warm" {
		t.Fatalf("invoke through b: served by %q (%s, %s), want a's warm instance (peer-warm)", res.Timing.Worker, res.Timing.Placement, res.Timing.StartKind)
	}
	if n := placements(t, b.Worker.Registry(), "forwarded"); n != 1 {
		t.Errorf("b counted %v forwarded, want 1", n)
	}
	// An experiment's restore mode measures the receiver's start path:
	// b serves it although a has the idle instance.
	res, err = b.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{Mode: restore.Eager})
	if err != nil || res.Timing.Worker != "b" || res.Timing.Placement != "pinned" || res.Timing.StartKind == "warm" {
		t.Fatalf("eager restore through b: %+v, %v; want b's own restore (pinned)", res, err)
	}
	if err := b.Evict(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	idleIn(t, b, "hello", map[string]int{"a": 1, "b": 0})

	if err := a.Evict(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	idleIn(t, b, "hello", map[string]int{"a": 0, "b": 0})
	res, err = b.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{})
	if err != nil || res.Timing.Worker != "b" || res.Timing.Placement != "peer-cached" {
		t.Fatalf("cold everywhere: %+v, %v; want served by b from its own snapshot (peer-cached)", res, err)
	}

	if err := b.Drain(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a draining in both views", func() bool {
		wa, ok := a.State().Worker("a")
		wb, okb := b.State().Worker("a")
		return ok && okb && wa.Draining && wb.Draining
	})
	if _, err := b.Forward(ctx, "a", "hello", helloRequest(), worker.InvokeOptions{}); !errors.Is(err, errNotDelivered) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("forward to a draining worker: %v, want refused (not delivered, unavailable)", err)
	}
	for range 3 {
		res, err = a.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{})
		if err != nil || res.Timing.Worker != "b" {
			t.Fatalf("invoke through draining a: %+v, %v; want served by b", res, err)
		}
	}
	if n := placements(t, a.Worker.Registry(), "local"); n != 0 {
		t.Errorf("draining a served %v itself", n)
	}
}

// ghost is a worker that exists only as a membership entry (kept fresh
// until del) and, once listening, a subscription to its invocation
// subject that receives and never answers: a worker that died holding
// the request.
type ghost struct {
	t        *testing.T
	kv       jetstream.KeyValue
	received atomic.Int32
	stop     chan struct{}
}

func newGhost(t *testing.T, c *Coordinator) *ghost {
	kv, err := c.Node().JS.KeyValue(context.Background(), membership.WorkersBucket)
	if err != nil {
		t.Fatal(err)
	}
	return &ghost{t: t, kv: kv}
}

// put announces the ghost with idle warm instances of fns, every 500 ms
// until del.
func (g *ghost) put(fns ...string) {
	w := membership.Worker{ID: "ghost", Address: "127.0.0.1:1", Slots: 10, Started: time.Now()}
	for _, f := range fns {
		w.Functions = append(w.Functions, membership.Function{Name: f, Idle: 5})
	}
	b, _ := json.Marshal(w)
	g.stop = make(chan struct{})
	write := func() {
		if _, err := g.kv.Put(context.Background(), "ghost", b); err != nil {
			g.t.Error(err)
		}
	}
	write()
	go func(stop chan struct{}) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				write()
			}
		}
	}(g.stop)
}

// del removes the ghost's entry: the views drop it at once.
func (g *ghost) del() {
	close(g.stop)
	_ = g.kv.Delete(context.Background(), "ghost")
}

// listen receives the ghost's invocations and deletes its entry on the
// first, as a worker that died with it.
func (g *ghost) listen(url string) {
	nc, err := nats.Connect(url)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(nc.Close)
	if _, err := nc.Subscribe(InvokeSubject+"ghost", func(*nats.Msg) {
		if g.received.Add(1) == 1 {
			g.del()
		}
	}); err != nil {
		g.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		g.t.Fatal(err)
	}
}

// TestPlacementRetriesUndeliveredOnly: an invocation placed on a worker
// that is not there (no responders) is placed again and served; one
// delivered to a worker that then dies is answered 503 and not run again,
// unless its function is idempotent.
func TestPlacementRetriesUndeliveredOnly(t *testing.T) {
	a, b := pair(t, map[string]bool{"hello": false, "idem": true})
	ctx := context.Background()
	for _, fn := range []string{"hello", "idem"} {
		for _, c := range []*Coordinator{a, b} {
			if err := c.Evict(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
	}
	g := newGhost(t, a)
	inView := func() bool { _, ok := b.State().Worker("ghost"); return ok }
	g.put("hello", "idem")
	waitFor(t, "the ghost in b's view", inView)
	idleIn(t, b, "hello", map[string]int{"a": 0, "b": 0, "ghost": 5})

	// Nobody listens on the ghost's subject: no responders, placed again.
	res, err := b.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{})
	if err != nil || res.Response.Status != 200 || res.Timing.Worker == "ghost" || res.Timing.Worker == "" {
		t.Fatalf("invoke placed on a worker that is not there: %+v, %v; want served by a or b", res, err)
	}
	if n := placements(t, b.Worker.Registry(), "retried"); n != 1 {
		t.Fatalf("b retried %v times, want 1", n)
	}
	for _, c := range []*Coordinator{a, b} {
		if err := c.Evict(ctx, "hello"); err != nil {
			t.Fatal(err)
		}
	}

	// The ghost receives and dies: hello is not run again.
	g.listen(a.Node().ClientURL())
	waitFor(t, "the ghost in b's view", inView)
	idleIn(t, b, "hello", map[string]int{"a": 0, "b": 0, "ghost": 5})
	t0 := time.Now()
	res, err = b.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{})
	if !errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, errNotDelivered) {
		t.Fatalf("invoke delivered to a worker that died: %+v, %v; want unavailable", res, err)
	}
	if g.received.Load() != 1 || placements(t, b.Worker.Registry(), "retried") != 1 {
		t.Fatalf("ghost received %d, b retried %v: want 1 and still 1", g.received.Load(), placements(t, b.Worker.Registry(), "retried"))
	}
	t.Logf("answered %v after the ghost received it", time.Since(t0))

	// Idempotent: placed again after the ghost dies, and served.
	g.received.Store(0)
	g.put("hello", "idem")
	waitFor(t, "the ghost in b's view", inView)
	idleIn(t, b, "idem", map[string]int{"a": 0, "b": 0, "ghost": 5})
	res, err = b.Invoke(ctx, "idem", helloRequest(), worker.InvokeOptions{})
	if err != nil || res.Response.Status != 200 || res.Timing.Worker == "ghost" {
		t.Fatalf("idempotent invoke delivered to a worker that died: %+v, %v; want served elsewhere", res, err)
	}
	if g.received.Load() != 1 {
		t.Fatalf("ghost received %d, want 1", g.received.Load())
	}
}

// TestGatewayHoldsAndPrewarms: a gateway places on the workers; when no
// worker has room it holds the request and asks the function's home to
// pre-warm, then forwards it to the warm instance; past the hold bound it
// answers 429. It knows the registry's functions, hands deploys to a worker
// (a malformed module is the worker's answer) and deletes through the registry.
func TestGatewayHoldsAndPrewarms(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	// A 128 MiB budget is no slot of the default 256 MiB: the worker never
	// has a free slot, so a request finds room only in an idle instance.
	a := startWith(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "a", ClientListen: "127.0.0.1:0"},
		Placement: placement.New(placement.Locality, placement.Options{}, 1)}, worker.Options{MemoryBudgetMiB: 128})
	ctx := context.Background()
	if _, err := a.Deploy(ctx, "hello", wasm, worker.Config{MemoryMiB: 16}); err != nil {
		t.Fatal(err)
	}
	gateway := func(bound time.Duration) *Gateway {
		g, err := NewGateway(ctx, GatewayOptions{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "gw", URL: a.Node().ClientURL()},
			Placement: placement.New(placement.Locality, placement.Options{HoldBound: bound}, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		waitFor(t, "the gateway knows hello", func() bool { return g.Admit("hello") == nil })
		return g
	}
	g := gateway(30 * time.Second)
	if err := a.Evict(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	idleIn(t, g, "hello", map[string]int{"a": 0})
	if w, _ := g.State().Worker("a"); w.Slots != 0 {
		t.Fatalf("a publishes %d slots, want 0", w.Slots)
	}
	res, err := g.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{})
	if err != nil || res.Timing.Worker != "a" || res.Timing.StartKind != "warm" || res.Timing.Placement != "peer-warm" {
		t.Fatalf("held invoke: %+v, %v; want a's pre-warmed instance", res, err)
	}
	if h, f := placements(t, g.Registry(), "held"), placements(t, g.Registry(), "forwarded"); h != 1 || f != 1 {
		t.Fatalf("gateway counted held %v, forwarded %v; want 1 and 1", h, f)
	}

	short := gateway(300 * time.Millisecond)
	if _, err := short.Invoke(ctx, "nosuch", helloRequest(), worker.InvokeOptions{}); !errors.Is(err, errdefs.ErrOverloaded) {
		t.Fatalf("invoke nobody can serve: %v, want overloaded (429) after the hold bound", err)
	}
	if n := placements(t, short.Registry(), "rejected"); n != 1 {
		t.Errorf("rejected %v, want 1", n)
	}
	if err := g.Admit("nosuch"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("admit of an unknown function: %v", err)
	}
	if info, err := g.Get("hello"); err != nil || info.Config.MemoryMiB != 16 {
		t.Errorf("gateway get: %+v, %v", info, err)
	}

	// Deploys go to a worker, deletions to the registry.
	info, err := g.Deploy(ctx, "x", wasm, worker.Config{MemoryMiB: 16})
	if err != nil || info.Snapshot == nil {
		t.Fatalf("deploy through the gateway: %+v, %v", info, err)
	}
	if _, err := a.Worker.Get("x"); err != nil {
		t.Fatalf("the worker does not run what the gateway deployed: %v", err)
	}
	waitFor(t, "the gateway knows x", func() bool { return g.Admit("x") == nil })
	if res, err := g.Invoke(ctx, "x", helloRequest(), worker.InvokeOptions{}); err != nil || res.Response.Status != 200 || res.Timing.Worker != "a" {
		t.Fatalf("invoke x through the gateway: %+v, %v", res, err)
	}
	if _, err := g.Deploy(ctx, "bad", []byte("\x00asm not a module"), worker.Config{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("deploy of a malformed module through the gateway: %v, want invalid", err)
	}
	if err := g.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker deletes x", func() bool { _, err := a.Worker.Get("x"); return errors.Is(err, errdefs.ErrNotFound) })
	if err := g.Delete(ctx, "x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("delete of a deleted function: %v, want not found", err)
	}
}

// TestCachedSnapshotPlaced: a follower whose store disk cache holds the
// chunks of the origin's snapshot (after one restore from the store)
// announces it (snapshot_cached, cached 1), and an invocation that must
// go elsewhere (it enters at the origin, which drains) is placed there as
// peer-cached: without the announcement the follower would be only the
// function's home.
func TestCachedSnapshotPlaced(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	st := stack.Config{Tenant: "t1", Secret: storetest.Secret(t), Dir: filepath.Join(t.TempDir(), "remote")}
	locality := placement.New(placement.Locality, placement.Options{}, 1)
	a := startWith(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "a", ClientListen: "127.0.0.1:0"}, Placement: locality},
		worker.Options{Store: &st})
	b := startWith(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "b", URL: a.Node().ClientURL()}, Placement: locality},
		worker.Options{Store: &st})
	ctx := context.Background()
	// Eager: these workers run without the pager; a snapshot without a
	// working set is measured by all of memory.img.
	if _, err := a.Deploy(ctx, "hello", wasm, worker.Config{RestoreMode: api.ModeEager}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b deploys hello", func() bool { _, err := b.Get("hello"); return err == nil })
	res, err := b.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{Mode: restore.Eager})
	if err != nil || res.Timing.Worker != "b" || res.Timing.StartKind != "restore" {
		t.Fatalf("b's restore: %+v, %v", res, err)
	}
	if err := b.Evict(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a sees b's snapshot cached and no idle instance", func() bool {
		f, ok := fnIn(a.State(), "b", "hello")
		return ok && f.SnapshotCached && f.Cached == 1 && f.Idle == 0
	})
	if err := a.Drain(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a draining in its view", func() bool { w, ok := a.State().Worker("a"); return ok && w.Draining })
	res, err = a.Invoke(ctx, "hello", helloRequest(), worker.InvokeOptions{})
	if err != nil || res.Timing.Worker != "b" || res.Timing.Placement != "peer-cached" {
		t.Fatalf("invoke through draining a: %+v, %v; want b (peer-cached)", res.Timing, err)
	}
}
