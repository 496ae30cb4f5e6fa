package coord

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/testwasm"
	"github.com/thaw-run/thaw/internal/worker"
)

// start runs a worker (without the pager) under a coordinator.
func start(t *testing.T, opts Options) *Coordinator { return startWith(t, opts, nil) }

// startWith runs a worker with snapshot store st (nil: none) under a
// coordinator.
func startWith(t *testing.T, opts Options, st *stack.Config) *Coordinator {
	t.Helper()
	ctx := context.Background()
	c, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.Open(ctx, worker.Options{DataDir: opts.Node.DataDir, NoPager: true, KeepStored: c.KeepStored, Store: st})
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
// unavailable; a placement that names a peer makes Invoke forward.
func TestTwoWorkersOneRegistry(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	a := start(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "a", ClientListen: "127.0.0.1:0"}})
	if a.Node().ClientURL() == "" {
		t.Fatal("a accepts no NATS clients")
	}
	placeB := ""
	b := start(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "b", URL: a.Node().ClientURL()},
		Place: func(string) string { return placeB }})
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
	if res.Timing.Node != "a" {
		t.Fatalf("a forwarded invocation names node %q as its server, want a", res.Timing.Node)
	}
	if _, err := b.Forward(ctx, "a", "nosuch", req(), worker.InvokeOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("forward of an unknown function: %v, want not found", err)
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := b.Forward(fctx, "gone", "hello", req(), worker.InvokeOptions{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("forward to a worker that is gone: %v, want unavailable (no responders)", err)
	}
	placeB = "gone"
	if _, err := b.Invoke(fctx, "hello", req(), worker.InvokeOptions{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("invoke placed on a gone worker: %v", err)
	}
	placeB = "a"
	if res, err := b.Invoke(ctx, "hello", req(), worker.InvokeOptions{}); err != nil || res.Response.Status != 200 {
		t.Fatalf("invoke placed on a: %+v, %v", res, err)
	}
	placeB = ""
	if res, err := b.Invoke(ctx, "hello", req(), worker.InvokeOptions{}); err != nil || res.Response.Status != 200 || res.Timing.Node != "b" {
		t.Fatalf("invoke placed here: %+v, %v (want served by b)", res, err)
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
// own (the cluster snapshots a function once), and its first invocation
// restores that snapshot from the store.
func TestFollowerRestoresOriginSnapshot(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	st := stack.Config{Tenant: "t1", Secret: storetest.Secret(t), Dir: filepath.Join(t.TempDir(), "remote")}
	a := startWith(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "a", ClientListen: "127.0.0.1:0"}}, &st)
	b := startWith(t, Options{Node: cluster.Options{DataDir: t.TempDir(), NodeID: "b", URL: a.Node().ClientURL()}}, &st)
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
	if got.Snapshot != info.Snapshot.ID || got.SnapshotLocal || got.Idle+got.Busy != 0 {
		t.Fatalf("b deployed %+v; want a's snapshot %s, not local, no instance booted", got, info.Snapshot.ID)
	}
	// Eager: these workers run without the pager that lazy restores need.
	res, err := b.Invoke(ctx, "hello", &abi.Request{Method: "GET", Path: "/", Header: http.Header{}}, worker.InvokeOptions{Mode: restore.Eager})
	if err != nil || res.Response.Status != 200 {
		t.Fatalf("invoke on b: %+v, %v", res, err)
	}
	if res.Timing.StartKind != "restore" || res.Timing.Source != worker.SourceStore || res.Timing.Fallback != "" {
		t.Fatalf("b's first instance: start %q, source %q, fallback %q; want a restore from the store",
			res.Timing.StartKind, res.Timing.Source, res.Timing.Fallback)
	}
}
