package registry

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// open starts an in-process NATS (no port) and opens a registry on it.
func open(t *testing.T) *Registry {
	t.Helper()
	n, err := cluster.Start(context.Background(), cluster.Options{DataDir: t.TempDir(), NodeID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	r, err := Open(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestConcurrentDeploysOneWinner: of deploys that read the same
// generation, exactly one is written; the rest conflict.
func TestConcurrentDeploysOneWinner(t *testing.T) {
	r := open(t)
	ctx := context.Background()
	for range 2 { // a first deploy (prev 0), then a redeploy
		prev, err := r.Generation(ctx, "f")
		if err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := r.Put(ctx, Record{Name: "f", ModuleSHA: SHA256([]byte{byte(i)}), Origin: "w"}, prev)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, errdefs.ErrConflict):
					conflicts++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || conflicts != n-1 {
			t.Fatalf("prev %d: %d winners, %d conflicts; want 1 and %d", prev, wins, conflicts, n-1)
		}
	}
}

// TestGenerations: every write raises the generation, also across a
// delete, and writes or deletes against a stale generation fail.
func TestGenerations(t *testing.T) {
	r := open(t)
	ctx := context.Background()
	g1, err := r.Put(ctx, Record{Name: "f", Snapshot: "a"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := r.Put(ctx, Record{Name: "f", Snapshot: "b"}, g1)
	if err != nil || g2 <= g1 {
		t.Fatalf("redeploy: generation %d after %d, %v", g2, g1, err)
	}
	if _, err := r.Put(ctx, Record{Name: "f"}, g1); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("put at a stale generation: %v, want conflict", err)
	}
	if err := r.Delete(ctx, "f", g1); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("delete at a stale generation: %v, want conflict", err)
	}
	rec, err := r.Get(ctx, "f")
	if err != nil || rec.Generation != g2 || rec.Snapshot != "b" {
		t.Fatalf("Get = %+v, %v", rec, err)
	}
	if err := r.Delete(ctx, "f", g2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "f"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if g, _ := r.Generation(ctx, "f"); g != 0 {
		t.Fatalf("generation after delete %d, want 0", g)
	}
	g3, err := r.Put(ctx, Record{Name: "f"}, 0)
	if err != nil || g3 <= g2 {
		t.Fatalf("deploy after delete: generation %d after %d, %v", g3, g2, err)
	}
}

// TestWatchAndReferences: the watch delivers what exists, Synced, then
// changes and deletes; References follows it, so a snapshot a live record
// names is kept and one it no longer names may go.
func TestWatchAndReferences(t *testing.T) {
	r := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g1, err := r.Put(ctx, Record{Name: "old", Snapshot: "s1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(ctx, Record{Name: "gone"}, 0); err != nil {
		t.Fatal(err)
	}
	gg, _ := r.Generation(ctx, "gone")
	if err := r.Delete(ctx, "gone", gg); err != nil {
		t.Fatal(err)
	}
	ch, err := r.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() Event {
		select {
		case ev := <-ch:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return Event{}
	}
	seen := map[string]Event{}
	for ev := next(); !ev.Synced; ev = next() {
		seen[ev.Record.Name] = ev
	}
	if ev := seen["old"]; ev.Deleted || ev.Record.Generation != g1 || ev.Record.Snapshot != "s1" {
		t.Fatalf("initial old: %+v", ev)
	}
	if ev := seen["gone"]; !ev.Deleted {
		t.Fatalf("initial gone: %+v (want the delete marker)", ev)
	}
	if !r.References("old", "s1") || r.References("old", "s2") || r.References("gone", "") {
		t.Fatal("References before the redeploy")
	}
	g2, err := r.Put(ctx, Record{Name: "old", Snapshot: "s2"}, g1)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Record.Generation != g2 || ev.Deleted {
		t.Fatalf("update event %+v", ev)
	}
	if r.References("old", "s1") || !r.References("old", "s2") {
		t.Fatal("after the redeploy, s1 must be free and s2 kept")
	}
	if err := r.Delete(ctx, "old", g2); err != nil {
		t.Fatal(err)
	}
	if ev := next(); !ev.Deleted || ev.Record.Name != "old" {
		t.Fatalf("delete event %+v", ev)
	}
	if r.References("old", "s2") {
		t.Fatal("a deleted function still references its snapshot")
	}
}

func TestModules(t *testing.T) {
	r := open(t)
	ctx := context.Background()
	wasm := []byte("\x00asm\x01\x00\x00\x00 module")
	sha, err := r.PutModule(ctx, wasm)
	if err != nil || sha != SHA256(wasm) {
		t.Fatalf("PutModule = %s, %v", sha, err)
	}
	if _, err := r.PutModule(ctx, wasm); err != nil {
		t.Fatalf("second PutModule: %v", err)
	}
	b, err := r.Module(ctx, sha)
	if err != nil || string(b) != string(wasm) {
		t.Fatalf("Module = %q, %v", b, err)
	}
	// A missing module is looked for again for moduleLag, then not found.
	t0 := time.Now()
	if _, err := r.Module(ctx, SHA256([]byte("other"))); !errors.Is(err, errdefs.ErrNotFound) || time.Since(t0) < moduleLag {
		t.Fatalf("missing module: %v after %v, want not found after %v", err, time.Since(t0), moduleLag)
	}
	// One stored while a reader looks for it (as a replica that applies
	// the write late shows it) is found.
	late := []byte("\x00asm\x01\x00\x00\x00 late")
	stored := make(chan error, 1)
	go func() {
		time.Sleep(3 * moduleRetry)
		_, err := r.PutModule(ctx, late)
		stored <- err
	}()
	if b, err := r.Module(ctx, SHA256(late)); err != nil || string(b) != string(late) {
		t.Fatalf("module stored while looked for: %q, %v", b, err)
	}
	if err := <-stored; err != nil {
		t.Fatal(err)
	}
	// A caller that stops waiting is not kept for moduleLag.
	cctx, cancel := context.WithTimeout(ctx, moduleRetry)
	defer cancel()
	t0 = time.Now()
	if _, err := r.Module(cctx, SHA256([]byte("never"))); err == nil || time.Since(t0) >= moduleLag {
		t.Fatalf("missing module, caller gone: %v after %v", err, time.Since(t0))
	}
	// An object whose content is not its name is refused.
	if _, err := r.obj.PutBytes(ctx, SHA256([]byte("x")), []byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Module(ctx, SHA256([]byte("x"))); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("mismatched module: %v", err)
	}
}

// TestQuorum: a leader counts with the replicas it heard from lately; a
// partitioned leader that still calls itself leader has no majority.
func TestQuorum(t *testing.T) {
	heard := &jetstream.PeerInfo{Name: "b", Current: true, Active: 300 * time.Millisecond}
	silent := &jetstream.PeerInfo{Name: "c", Current: true, Active: 12 * time.Second}
	offline := &jetstream.PeerInfo{Name: "c", Offline: true}
	for _, tt := range []struct {
		cl       jetstream.ClusterInfo
		replicas int
		want     bool
	}{
		{jetstream.ClusterInfo{Leader: "a"}, 1, true},
		{jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{heard, silent}}, 3, true},
		{jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{silent, offline}}, 3, false},
		{jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{silent}}, 2, false},
		{jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{heard}}, 2, true},
		{jetstream.ClusterInfo{Replicas: []*jetstream.PeerInfo{heard, heard}}, 3, false},
	} {
		if got := quorum(&tt.cl, tt.replicas); got != tt.want {
			t.Errorf("quorum(%+v, %d) = %v, want %v", tt.cl, tt.replicas, got, tt.want)
		}
	}
}
