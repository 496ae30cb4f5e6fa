package coord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/registry"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/testwasm"
	"github.com/thaw-run/thaw/internal/worker"
)

// sharedCache is the compilation cache every test worker links to
// (DATA/cache): the module is compiled once for the package's tests, not
// once per worker.
var sharedCache string

func TestMain(m *testing.M) {
	pager.RunIfChild(stack.OpenReaderJSON) // the pager child of storePair's paged workers
	dir, err := os.MkdirTemp("", "thaw-coord-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedCache = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// start runs a worker (without the pager) under a coordinator.
func start(t *testing.T, opts Options) *Coordinator {
	t.Helper()
	return startWith(t, opts, worker.Options{})
}

// startWith is start with the worker's options wo (its data directory,
// pager, KeepStored and Published are set here).
func startWith(t *testing.T, opts Options, wo worker.Options) *Coordinator {
	t.Helper()
	return startWorker(t, opts, wo, false)
}

// storePair starts workers a and b (a NATS client of a's server) sharing
// one snapshot store, with the userfaultfd pager (which lazy, reap and
// bulk restores need) if paged.
func storePair(t *testing.T, paged bool) (a, b *Coordinator) {
	t.Helper()
	st := stack.Config{Tenant: "t1", Secret: storetest.Secret(t), Dir: filepath.Join(t.TempDir(), "remote")}
	a = startWorker(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "a", ClientListen: "127.0.0.1:0"}}, worker.Options{Store: &st}, paged)
	b = startWorker(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "b", URL: a.Node().ClientURL()}}, worker.Options{Store: &st}, paged)
	return a, b
}

func startWorker(t *testing.T, opts Options, wo worker.Options, paged bool) *Coordinator {
	t.Helper()
	ctx := context.Background()
	c, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	wo.DataDir, wo.NoPager, wo.KeepStored, wo.Published = opts.Node.DataDir, !paged, c.KeepStored, c.Published
	if err := os.Symlink(sharedCache, filepath.Join(wo.DataDir, "cache")); err != nil {
		t.Fatal(err)
	}
	w, err := worker.Open(ctx, wo)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	c.Attach(ctx, w, "127.0.0.1:1")
	t.Cleanup(func() {
		c.Close()
		w.Close(context.Background())
	})
	return c
}

// TestTwoWorkersOneRegistry: worker b, a client of a's NATS (the
// --nats-url path), follows a's deploy; invocations forwarded to a are
// served there; a forward to a worker that is gone fails at once as
// unavailable; without a placement, Invoke serves locally.
func TestTwoWorkersOneRegistry(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	a := start(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "a", ClientListen: "127.0.0.1:0"}})
	if a.Node().ClientURL() == "" {
		t.Fatal("a accepts no NATS clients")
	}
	b := start(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "b", URL: a.Node().ClientURL()}})
	ctx := context.Background()
	if _, err := a.Deploy(ctx, "hello", wasm, worker.Config{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := b.Get("hello"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never deployed hello")
		}
	}
	req := func() *abi.Request { return &abi.Request{Method: "GET", Path: "/", Header: http.Header{}} }
	res, err := b.Forward(ctx, "a", "hello", req(), worker.InvokeOptions{})
	if err != nil || res.Response.Status != 200 || len(res.Response.Body) == 0 {
		t.Fatalf("forward to a: %+v, %v", res, err)
	}
	if res.Timing.Worker != "a" {
		t.Fatalf("a forwarded invocation names node %q as its server, want a", res.Timing.Worker)
	}
	if _, err := b.Forward(ctx, "a", "nosuch", req(), worker.InvokeOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("forward of an unknown function: %v, want not found", err)
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := b.Forward(fctx, "gone", "hello", req(), worker.InvokeOptions{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("forward to a worker that is gone: %v, want unavailable (no responders)", err)
	}
	if res, err := b.Invoke(ctx, "hello", req(), worker.InvokeOptions{}); err != nil || res.Response.Status != 200 || res.Timing.Worker != "b" {
		t.Fatalf("invoke without placement: %+v, %v (want served here, by b)", res, err)
	}
	// Both see each other.
	for deadline := time.Now().Add(time.Minute); len(b.State().Workers) != 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b's view: %+v", b.State())
		}
	}
}

// TestFollowerRestoresOriginSnapshot: with a shared store, a follower
// deploys the origin's snapshot instead of booting and snapshotting its
// own (the cluster snapshots a function once), copies it to its disk, and
// restores that copy.
func TestFollowerRestoresOriginSnapshot(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	a, b := storePair(t, false)
	ctx := context.Background()
	info, err := a.Deploy(ctx, "hello", wasm, worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var got worker.FunctionState
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if s := b.Worker.States(); len(s) == 1 {
			got = s[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never deployed hello")
		}
	}
	if got.Snapshot != info.Snapshot.ID || got.Idle+got.Busy != 0 {
		t.Fatalf("b deployed %+v; want a's snapshot %s, no instance booted", got, info.Snapshot.ID)
	}
	// b copies that snapshot to its disk in the background, and
	// restores it from there.
	b.Worker.WaitCheckpoints("hello")
	if s := b.Worker.States(); len(s) != 1 || !s[0].SnapshotLocal || s[0].Snapshot != info.Snapshot.ID {
		t.Fatalf("b after the copy: %+v; want a's snapshot on b's disk", s)
	}
	// Eager: these workers run without the pager that lazy restores need.
	res, err := b.Invoke(ctx, "hello", &abi.Request{Method: "GET", Path: "/", Header: http.Header{}}, worker.InvokeOptions{Mode: restore.Eager})
	if err != nil || res.Response.Status != 200 {
		t.Fatalf("invoke on b: %+v, %v", res, err)
	}
	if res.Timing.StartKind != "restore" || res.Timing.Source != worker.SourceLocal || res.Timing.Fallback != "" {
		t.Fatalf("b's first instance: start %q, source %q, fallback %q; want a restore of the local copy",
			res.Timing.StartKind, res.Timing.Source, res.Timing.Fallback)
	}
}

// TestFollowerRetriesModuleFetch: a record whose module cannot be fetched
// yet (here: not stored; after a partition: the object store's stream
// without a leader) is applied once the module arrives, without another
// registry change to trigger it.
func TestFollowerRetriesModuleFetch(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	a := start(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "a", ClientListen: "127.0.0.1:0"}})
	b := start(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "b", URL: a.Node().ClientURL()}})
	ctx := context.Background()
	reg, err := a.registry()
	for deadline := time.Now().Add(time.Minute); err != nil; reg, err = a.registry() {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec := registry.Record{Name: "late", ModuleSHA: registry.SHA256(wasm), ModuleSize: len(wasm), Origin: "elsewhere", Deployed: time.Now().UTC()}
	if _, err := reg.Put(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	// Both workers try, fail to fetch the module, and keep trying.
	time.Sleep(2 * resyncInterval)
	if _, err := b.Get("late"); err == nil {
		t.Fatal("b deployed a function whose module is not stored")
	}
	if _, err := reg.PutModule(ctx, wasm); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		_, errA := a.Get("late")
		_, errB := b.Get("late")
		if errA == nil && errB == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the module arrived, but a: %v, b: %v", errA, errB)
		}
	}
}

// TestAnnouncedWorkingSet: the worker that records a function's working
// set publishes the snapshot again with it and announces that
// (WorkingSetSubject); a follower holding a local copy without one adopts
// it in the background, before any restore of its own.
func TestAnnouncedWorkingSet(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	a, b := storePair(t, true)
	ctx := context.Background()
	if _, err := a.Deploy(ctx, "hello", wasm, worker.Config{}); err != nil {
		t.Fatal(err)
	}
	state := func() worker.FunctionState {
		if s := b.Worker.States(); len(s) == 1 {
			return s[0]
		}
		return worker.FunctionState{}
	}
	for deadline := time.Now().Add(time.Minute); !state().SnapshotLocal; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b never copied hello's snapshot: %+v", b.Worker.States())
		}
	}
	if state().WorkingSet {
		t.Fatal("b's copy has a working set before any worker recorded one")
	}
	// a's first reap restore records the working set (lazily).
	res, err := a.Worker.Invoke(ctx, "hello", &abi.Request{Method: "GET", Path: "/", Header: http.Header{}}, worker.InvokeOptions{Mode: restore.Reap})
	if err != nil || res.Timing.Mode != restore.Lazy {
		t.Fatalf("a's first reap restore: %+v, %v; want a lazy one that records", res, err)
	}
	for deadline := time.Now().Add(time.Minute); !state().WorkingSet; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b never adopted the announced working set: %+v", state())
		}
	}
	if s := state(); s.Idle+s.Busy != 0 {
		t.Fatalf("b: %+v; want the working set adopted without an instance", s)
	}
}
