package worker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/testminio"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// storedIDs lists the store snapshots the worker's tenant holds.
func storedIDs(t *testing.T, w *Worker) []string {
	t.Helper()
	ids, err := storeOf(t, w).h.Store.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// storedChunks lists the chunk objects of tenant in the worker's store
// (upload queue and remote, not caches).
func storedChunks(t *testing.T, w *Worker, tenant string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := storeOf(t, w).h.Tiered.List(context.Background(), "chunks/"+tenant+"/", func(fi store.ObjectInfo) error {
		out[fi.Name] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manifestChunks returns the object names of the non-zero chunks store
// snapshot sid references.
func manifestChunks(t *testing.T, w *Worker, tenant, sid string) map[string]bool {
	t.Helper()
	sn, err := storeOf(t, w).h.Store.Open(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range sn.Manifest().Files {
		for _, c := range f.Chunks {
			if !c.Zero {
				out["chunks/"+tenant+"/"+c.ID.String()] = true
			}
		}
	}
	return out
}

// gcLater runs GC on the worker's store as it would run once the upload
// lease (GCGrace, 1 h) of every chunk written so far has passed.
func gcLater(t *testing.T, w *Worker, cfg stack.Config) store.GCResult {
	t.Helper()
	keys, err := store.NewKeys(cfg.Tenant, cfg.Secret)
	if err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	st, err := store.New(store.Config{Backend: storeOf(t, w).h.Tiered, Keys: keys, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.GC(context.Background())
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	return res
}

// A redeploy deletes the replaced snapshot's manifest and materialised
// image; GC then frees the chunks only it used and keeps those the new
// snapshot shares with it. A GC within the upload lease frees nothing.
func TestStoreRedeployDeletesOldSnapshot(t *testing.T) {
	ctx := context.Background()
	cfg := testStore(t)
	dir := t.TempDir()
	w := openStoreWorker(t, dir, cfg)
	deploy(t, w, "hello", "examples/hello", Config{})
	w.WaitPublishes()
	info, _ := w.Get("hello")
	oldID := info.Snapshot.ID
	oldSID := storesnap.ID("hello", oldID)

	// An mmap restore from the store materialises the image locally.
	if err := os.RemoveAll(filepath.Join(w.snapDir("hello"), oldID)); err != nil {
		t.Fatal(err)
	}
	res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Mmap})
	if res.Timing.Source != SourceStore || res.Timing.Fallback != "" {
		t.Fatalf("mmap restore from %q (fallback %q), want the store", res.Timing.Source, res.Timing.Fallback)
	}
	img := filepath.Join(dir, storeImagesDir, oldSID+".img")
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("no materialised image: %v", err)
	}

	oldChunks := manifestChunks(t, w, cfg.Tenant, oldSID)
	deploy(t, w, "hello", "examples/hello", Config{})
	info, _ = w.Get("hello")
	newSID := storesnap.ID("hello", info.Snapshot.ID)
	if newSID == oldSID {
		t.Fatal("redeploy kept the snapshot id")
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Fatalf("materialised image of the replaced snapshot still there (err %v)", err)
	}
	w.WaitPublishes()
	newChunks := manifestChunks(t, w, cfg.Tenant, newSID)
	if err := w.SyncStore(ctx); err != nil {
		t.Fatal(err)
	}
	if ids := storedIDs(t, w); len(ids) != 1 || ids[0] != newSID {
		t.Fatalf("store holds %q after the redeploy, want only %s", ids, newSID)
	}
	if n := testutil.ToFloat64(storeOf(t, w).deletes.WithLabelValues("ok")); n != 1 {
		t.Fatalf("%v deletions counted, want 1", n)
	}

	var oldOnly, shared int
	for c := range oldChunks {
		if newChunks[c] {
			shared++
		} else {
			oldOnly++
		}
	}
	// The same module initialises to nearly the same memory: the test is
	// only meaningful if the two snapshots share chunks and differ in some.
	if shared == 0 || oldOnly == 0 {
		t.Fatalf("old snapshot: %d chunks shared with the new one, %d its own; want both > 0", shared, oldOnly)
	}

	young, err := storeOf(t, w).h.Store.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if young.Deleted != 0 || young.Young != oldOnly {
		t.Fatalf("GC within the lease: %+v; want nothing deleted and %d young", young, oldOnly)
	}
	gc := gcLater(t, w, cfg)
	if gc.Deleted != oldOnly {
		t.Fatalf("GC deleted %d chunks, want the %d only the old snapshot used (%+v)", gc.Deleted, oldOnly, gc)
	}
	left := storedChunks(t, w, cfg.Tenant)
	for c := range oldChunks {
		if left[c] != newChunks[c] {
			t.Fatalf("chunk %s: stored %v, used by the new snapshot %v", c, left[c], newChunks[c])
		}
	}
	if len(left) != len(newChunks) {
		t.Fatalf("%d chunks left, want the new snapshot's %d", len(left), len(newChunks))
	}
	if _, err := storeOf(t, w).h.Store.Verify(ctx); err != nil {
		t.Fatalf("verify after gc: %v", err)
	}
	storeOf(t, w).mu.Lock()
	_, cached := storeOf(t, w).opened[oldSID]
	storeOf(t, w).mu.Unlock()
	if cached {
		t.Fatal("the deleted store snapshot is still cached as opened")
	}
	res = invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Eager})
	if res.Timing.StartKind != "restore" || res.Timing.Fallback != "" {
		t.Fatalf("restore of the new snapshot: start %q, fallback %q", res.Timing.StartKind, res.Timing.Fallback)
	}
}

// thaw rm deletes every stored snapshot of the function, and GC then frees
// all their chunks.
func TestStoreRemoveDeletesAll(t *testing.T) {
	ctx := context.Background()
	cfg := testStore(t)
	w := openStoreWorker(t, t.TempDir(), cfg)
	deployPublished(t, w)
	if ids := storedIDs(t, w); len(ids) != 1 {
		t.Fatalf("store holds %q, want the deploy snapshot", ids)
	}
	if err := w.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := w.SyncStore(ctx); err != nil {
		t.Fatal(err)
	}
	if ids := storedIDs(t, w); len(ids) != 0 {
		t.Fatalf("store holds %q after rm, want nothing", ids)
	}
	before := len(storedChunks(t, w, cfg.Tenant))
	gc := gcLater(t, w, cfg)
	if before == 0 || gc.Deleted != before {
		t.Fatalf("GC deleted %d of %d chunks, want all", gc.Deleted, before)
	}
	if left := storedChunks(t, w, cfg.Tenant); len(left) != 0 {
		t.Fatalf("%d chunks left after rm and gc", len(left))
	}
}

// A checkpoint the policy prunes from the pool is deleted from the store
// too; the deploy snapshot stays.
func TestStorePrunedCheckpointDeleted(t *testing.T) {
	ctx := context.Background()
	cfg := testStore(t)
	w := openStoreWorker(t, t.TempDir(), cfg)
	// Pool size 1 holds only the deploy snapshot: the checkpoint after
	// request 1 is written, published, and pruned at once.
	deploy(t, w, "hello", "examples/hello", Config{Policy: "fixed:1", PoolSize: 1})
	invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{})
	w.WaitCheckpoints("hello")
	if n := testutil.ToFloat64(w.metrics.checkpoints.WithLabelValues("hello")); n != 1 {
		t.Fatalf("%v checkpoints, want 1", n)
	}
	info, _ := w.Get("hello")
	if info.PoolSnapshots != 0 {
		t.Fatalf("%d pool snapshots, want the checkpoint pruned", info.PoolSnapshots)
	}
	if err := w.SyncStore(ctx); err != nil {
		t.Fatal(err)
	}
	want := storesnap.ID("hello", info.Snapshot.ID)
	if ids := storedIDs(t, w); len(ids) != 1 || ids[0] != want {
		t.Fatalf("store holds %q, want only the deploy snapshot %s", ids, want)
	}
	if n := testutil.ToFloat64(storeOf(t, w).deletes.WithLabelValues("ok")); n != 1 {
		t.Fatalf("%v deletions, want 1 (the pruned checkpoint)", n)
	}
}

// privateMinIO returns a MinIO of the test's own, stopped, and a function
// that runs scripts/minio.sh commands on it. Skips without
// THAW_TEST_MINIO_SCRIPT.
func privateMinIO(t *testing.T) (stack.Config, func(cmd string)) {
	t.Helper()
	minio := testminio.Private(t)
	minio.Run("stop")
	cfg := stack.Config{Tenant: "t1", Secret: storetest.Secret(t), S3: &s3.Config{
		AccessKey: os.Getenv("THAW_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("THAW_TEST_S3_SECRET_KEY"),
		Region: os.Getenv("THAW_TEST_S3_REGION"), Bucket: "thaw-down-test"}}
	cfg.S3.Endpoint = minio.Endpoint()
	return cfg, minio.Run
}

// A worker starts and serves while its object store is down (and its
// bucket does not exist yet): restores come from the local snapshot,
// publishes queue on local disk, a redeploy and its deletion of the old
// snapshot succeed for the user, and all of it survives a restart. When the
// store returns, the bucket is created, the queued snapshot uploaded and
// the deletion carried out.
func TestStoreStartWhileRemoteDown(t *testing.T) {
	ctx := context.Background()
	cfg, ctl := privateMinIO(t)
	dir := t.TempDir()
	w, err := Open(ctx, Options{DataDir: dir, Store: &cfg})
	if err != nil {
		t.Fatalf("worker start with the object store down: %v", err)
	}
	defer func() { w.Close(ctx) }()
	deploy(t, w, "hello", "examples/hello", Config{})
	want := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Cold}).Response.Body
	res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Eager})
	if res.Timing.Source != SourceLocal || res.Timing.Fallback != "" || string(res.Response.Body) != string(want) {
		t.Fatalf("restore while down: source %q, fallback %q, body %q", res.Timing.Source, res.Timing.Fallback, res.Response.Body)
	}
	w.WaitPublishes()
	if n := testutil.ToFloat64(storeOf(t, w).publishes.WithLabelValues("hello", "ok")); n != 1 {
		t.Fatalf("%v publishes reported ok while down, want 1 (queued)", n)
	}
	if storeOf(t, w).h.Tiered.Pending() == 0 {
		t.Fatal("nothing queued for upload while the store is down")
	}
	info, _ := w.Get("hello")
	oldSID := storesnap.ID("hello", info.Snapshot.ID)

	deploy(t, w, "hello", "examples/hello", Config{}) // queues the old snapshot's deletion
	info, _ = w.Get("hello")
	newSID := storesnap.ID("hello", info.Snapshot.ID)
	if err := w.SyncStore(ctx); err == nil {
		t.Fatal("SyncStore succeeded with the store down")
	}
	if _, err := os.Stat(filepath.Join(dir, storeDeletesDir, oldSID)); err != nil {
		t.Fatalf("deletion of %s not queued: %v", oldSID, err)
	}

	// Restart, still down: the worker starts and serves again.
	w.Close(ctx)
	if w, err = Open(ctx, Options{DataDir: dir, Store: &cfg}); err != nil {
		t.Fatalf("restart with the object store down: %v", err)
	}
	res = invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Eager})
	if res.Timing.Source != SourceLocal || string(res.Response.Body) != string(want) {
		t.Fatalf("restore after restart while down: source %q, fallback %q", res.Timing.Source, res.Timing.Fallback)
	}

	ctl("start")
	if err := w.SyncStore(ctx); err != nil {
		t.Fatalf("SyncStore after the store returned: %v", err)
	}
	if n := storeOf(t, w).h.Tiered.Pending(); n != 0 {
		t.Fatalf("%d writes still queued", n)
	}
	// A fresh handle with its own cache sees only the bucket.
	fresh := cfg
	fresh.CacheDir = t.TempDir()
	h, err := stack.Open(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ids, err := h.Store.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != newSID {
		t.Fatalf("bucket holds %q, want only %s", ids, newSID)
	}
	if _, err := storesnap.OpenSnapshot(ctx, h.Store, newSID); err != nil {
		t.Fatalf("queued snapshot unreadable from the bucket: %v", err)
	}
	if _, err := h.Store.Verify(ctx); err != nil {
		t.Fatalf("verify: %v", err)
	}
}
