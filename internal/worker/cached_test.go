package worker

import (
	"context"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/storesnap"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// waitCached waits until w's only function announces a Cached fraction
// that ok accepts, and returns it.
func waitCached(t *testing.T, w *Worker, what string, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(4 * cachedRefresh)
	for {
		st := w.States()
		if len(st) == 1 && ok(st[0].Cached) {
			return st[0].Cached
		}
		if time.Now().After(deadline) {
			t.Fatalf("states %+v: want Cached %s", st, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A worker announces how much of its function's snapshot its disk cache
// holds: all of it on the worker that published it (a publish fills the
// cache), less once chunks leave the cache, and all of it on a follower
// once a restore from the store has fetched what its mode reads.
func TestStatesCached(t *testing.T) {
	cfg := testStore(t)
	w1 := openStoreWorker(t, t.TempDir(), cfg)
	deployPublished(t, w1)
	waitCached(t, w1, "1 after the publishes", func(f float64) bool { return f == 1 })

	// Evict what a (bulk) restore reads: the next refresh says so.
	s := storeOf(t, w1)
	info, err := w1.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	f, err := w1.lookup("hello")
	if err != nil {
		t.Fatal(err)
	}
	sn, err := s.open(context.Background(), f, info.Snapshot.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := restoreObjects(sn, restore.Bulk)
	if err != nil || len(objs) == 0 || sn.WS == nil {
		t.Fatalf("a bulk restore reads %d chunks (%v), working set %v; want the working set's", len(objs), err, sn.WS != nil)
	}
	for _, o := range objs {
		if err := s.h.Cache.Delete(context.Background(), o.Name); err != nil {
			t.Fatal(err)
		}
	}
	waitCached(t, w1, "0 after the eviction", func(f float64) bool { return f == 0 })

	w2 := openStoreWorker(t, t.TempDir(), cfg)
	if _, err := w2.DeployStored(context.Background(), "hello", testwasm.Build(t, "examples/hello"), Config{}, info.Snapshot.ID); err != nil {
		t.Fatal(err)
	}
	if res := invoke(t, w2, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Bulk}); res.Timing.Source != SourceStore {
		t.Fatalf("follower's restore: source %q, fallback %q; want the store", res.Timing.Source, res.Timing.Fallback)
	}
	waitCached(t, w2, "1 after a restore from the store", func(f float64) bool { return f == 1 })
}

// A lazy restore reads the chunks of memory.img that hold the working
// set's pages; eager every stored chunk of memory.img; reap and bulk
// ws.img's.
func TestRestoreObjects(t *testing.T) {
	cfg := dirStore(t)
	w := openStoreWorker(t, t.TempDir(), cfg)
	deployPublished(t, w)
	info, err := w.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	sn, err := storesnap.OpenSnapshot(context.Background(), storeOf(t, w).h.Store, storesnap.ID("hello", info.Snapshot.ID))
	if err != nil || sn.WS == nil {
		t.Fatalf("stored snapshot: %v (working set %v)", err, sn != nil && sn.WS != nil)
	}
	image, _ := sn.Snap.ChunkObjects(snapshot.ImageFile)
	ws, _ := sn.Snap.ChunkObjects(snapshot.WSImageFile)
	eager, _ := restoreObjects(sn, restore.Eager)
	bulk, _ := restoreObjects(sn, restore.Bulk)
	lazy, err := restoreObjects(sn, restore.Lazy)
	if err != nil || len(eager) != len(image) || len(bulk) != len(ws) || len(lazy) == 0 || len(lazy) > len(image) {
		t.Fatalf("eager %d, bulk %d, lazy %d chunks (%v); memory.img has %d, ws.img %d", len(eager), len(bulk), len(lazy), err, len(image), len(ws))
	}
	holdsWS := func(o store.ChunkObject) bool {
		for _, r := range sn.WS.Runs {
			if lo, hi := int64(r.Start)*snapshot.PageSize, int64(r.Start+r.Count)*snapshot.PageSize; lo < o.Off+int64(o.Size) && o.Off < hi {
				return true
			}
		}
		return false
	}
	inLazy := map[int64]bool{}
	for _, o := range lazy {
		inLazy[o.Off] = true
		if !holdsWS(o) {
			t.Errorf("lazy reads the chunk at %d, which holds no working-set page", o.Off)
		}
	}
	for _, o := range image {
		if holdsWS(o) && !inLazy[o.Off] {
			t.Errorf("lazy leaves out the chunk at %d, which holds working-set pages", o.Off)
		}
	}
}
