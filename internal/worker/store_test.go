package worker

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/storesnap"
	"github.com/thaw-run/thaw/internal/testwasm"
)

var storeModes = []restore.Mode{restore.Eager, restore.Mmap, restore.Lazy, restore.Reap, restore.Bulk}

// dirStore is a store whose remote is a local directory. CacheDir is left
// empty so that every worker gets its own cache under its data dir.
func dirStore(t *testing.T) stack.Config {
	return stack.Config{Tenant: "t1", Secret: storetest.Secret(t), Dir: filepath.Join(t.TempDir(), "remote")}
}

// testStore is MinIO when THAW_TEST_S3_ENDPOINT is set (scripts/minio.sh),
// else a local-directory remote.
func testStore(t *testing.T) stack.Config {
	ep := os.Getenv("THAW_TEST_S3_ENDPOINT")
	if ep == "" {
		return dirStore(t)
	}
	return stack.Config{Tenant: "t1", Secret: storetest.Secret(t), S3: &s3.Config{
		Endpoint: ep, AccessKey: os.Getenv("THAW_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("THAW_TEST_S3_SECRET_KEY"),
		Region: os.Getenv("THAW_TEST_S3_REGION"), Bucket: "thaw-worker-test", Prefix: "run-" + strconv.FormatInt(time.Now().UnixNano(), 36)}}
}

func openStoreWorker(t *testing.T, dataDir string, cfg stack.Config) *Worker {
	t.Helper()
	w, err := Open(context.Background(), Options{DataDir: dataDir, Store: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// deployPublished deploys examples/hello with a store, records its working
// set with one local reap restore, and waits until both publishes (the
// snapshot, then the snapshot with its working set) are done. It returns
// the answer of a cold instance.
func deployPublished(t *testing.T, w *Worker) []byte {
	t.Helper()
	deploy(t, w, "hello", "examples/hello", Config{})
	cold := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Cold})
	rec := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Reap})
	if rec.Timing.Source != SourceLocal || rec.Timing.Fallback != "" {
		t.Fatalf("recording restore: source %q, fallback %q; want a local restore", rec.Timing.Source, rec.Timing.Fallback)
	}
	w.WaitPublishes()
	if n := testutil.ToFloat64(storeOf(t, w).publishes.WithLabelValues("hello", "ok")); n != 2 {
		t.Fatalf("%v successful publishes, want 2 (at deploy, after recording the working set)", n)
	}
	if n := testutil.ToFloat64(storeOf(t, w).publishes.WithLabelValues("hello", "failed")); n != 0 {
		t.Fatalf("%v failed publishes", n)
	}
	return cold.Response.Body
}

// copyRegistry gives the data directory dst the registry entry
// (function.json and its module, no snapshot) of function name in src.
func copyRegistry(t *testing.T, src, dst, name string) {
	t.Helper()
	to := filepath.Join(dst, "functions", name)
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(src, "functions", name, recordFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, recordFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(src, modulesDir, rec.ModuleSHA+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dst, modulesDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, modulesDir, rec.ModuleSHA+".wasm"), mod, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkFromStore invokes hello in every mode and checks that each instance
// was restored from the store and answers as a cold one.
func checkFromStore(t *testing.T, w *Worker, want []byte) {
	t.Helper()
	checkRestores(t, w, want, SourceStore)
}

// checkRestores is checkFromStore for restores from source.
func checkRestores(t *testing.T, w *Worker, want []byte, source string) {
	t.Helper()
	for _, mode := range storeModes {
		t.Run(string(mode), func(t *testing.T) {
			res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: mode})
			tm := res.Timing
			if tm.Fallback != "" || tm.StartKind != "restore" || tm.Source != source {
				t.Fatalf("start %q, source %q, fallback %q; want a restore from %s", tm.StartKind, tm.Source, tm.Fallback, source)
			}
			if !bytes.Equal(res.Response.Body, want) {
				t.Fatalf("restored instance answered %q, cold one %q", res.Response.Body, want)
			}
			if mode.UsesWorkingSet() && (tm.Mode != mode || tm.Restore == nil || tm.Restore.WSPages == 0) {
				t.Fatalf("%s restore ran as %s with stats %+v; want the stored working set installed", mode, tm.Mode, tm.Restore)
			}
		})
	}
}

// After the local snapshot directory is deleted, every mode restores from
// the store and answers as a cold instance; Timing says so.
func TestStoreRestoreAfterLocalLoss(t *testing.T) {
	w := openStoreWorker(t, t.TempDir(), testStore(t))
	want := deployPublished(t, w)
	if err := os.RemoveAll(w.snapDir("hello")); err != nil {
		t.Fatal(err)
	}
	checkFromStore(t, w, want)
	if n := testutil.ToFloat64(w.metrics.fallbacks.WithLabelValues("hello", string(restore.Eager))); n != 0 {
		t.Fatalf("%v fallbacks", n)
	}
	// /metrics says what the store read, by tier: the restores read
	// through it, and the object store is the tier called remote.
	fams, err := w.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	tiers, total := map[string]bool{}, 0.0
	for _, f := range fams {
		if f.GetName() != "thaw_store_tier_bytes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tier" {
					tiers[l.GetValue()] = true
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	if !tiers["remote"] || total == 0 {
		t.Fatalf("thaw_store_tier_bytes_total: tiers %v, %v bytes; want a remote tier and bytes read", tiers, total)
	}
}

// Restores from the store take function.restore, the local path, with
// the one difference a store snapshot imposes: a reap restore of a snapshot
// published without a working set runs lazily, as locally, but records
// none, since a working set is written beside a local image. The next one
// is lazy again, and nothing is republished.
func TestStoreRestoreWithoutWorkingSetRecordsNone(t *testing.T) {
	w := openStoreWorker(t, t.TempDir(), dirStore(t))
	deploy(t, w, "hello", "examples/hello", Config{})
	w.WaitPublishes() // the deploy snapshot, without a working set
	if err := os.RemoveAll(w.snapDir("hello")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Reap})
		tm := res.Timing
		if tm.Fallback != "" || tm.Source != SourceStore || tm.Mode != restore.Lazy || tm.Restore == nil || tm.Restore.Recording || tm.Restore.Faults == 0 {
			t.Fatalf("restore %d: source %q, mode %q, fallback %q, stats %+v; want a lazy restore from the store, not recording",
				i, tm.Source, tm.Mode, tm.Fallback, tm.Restore)
		}
	}
	w.WaitPublishes()
	if n := testutil.ToFloat64(storeOf(t, w).publishes.WithLabelValues("hello", "ok")); n != 1 {
		t.Fatalf("%v publishes, want 1 (the deploy's): a store restore recorded a working set", n)
	}
	if n := testutil.ToFloat64(w.metrics.recordings.WithLabelValues("hello")); n != 0 {
		t.Fatalf("%v working sets recorded from a store restore", n)
	}
}

// A worker restarted after its snapshot directory was deleted, and a second
// worker with its own data directory given the same registry entry, both
// restore the first worker's snapshot from the store.
func TestStoreRestoreOnOtherWorker(t *testing.T) {
	cfg := testStore(t)
	dir1 := t.TempDir()
	w1, err := Open(context.Background(), Options{DataDir: dir1, Store: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	want := deployPublished(t, w1)
	info, err := w1.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	w1.Close(context.Background())

	t.Run("second-worker", func(t *testing.T) {
		dir2 := t.TempDir()
		copyRegistry(t, dir1, dir2, "hello")
		w2 := openStoreWorker(t, dir2, cfg)
		got, err := w2.Get("hello")
		if err != nil {
			t.Fatal(err)
		}
		if got.Snapshot == nil || got.Snapshot.ID != info.Snapshot.ID {
			t.Fatalf("second worker's snapshot %+v, want %s", got.Snapshot, info.Snapshot.ID)
		}
		checkFromStore(t, w2, want)
	})
	t.Run("restarted", func(t *testing.T) {
		if err := os.RemoveAll(filepath.Join(dir1, "snapshots")); err != nil {
			t.Fatal(err)
		}
		w := openStoreWorker(t, dir1, cfg)
		checkFromStore(t, w, want)
	})
}

// DeployStored on a second worker (a cluster follower) takes the first
// worker's published snapshot instead of booting one: the record names it,
// no instance boots, the snapshot is copied to the follower's disk in the
// background, and every mode then restores that copy and answers as a
// cold instance. A snapshot the store does not have is
// errdefs.ErrNotFound and deploys nothing.
func TestDeployStored(t *testing.T) {
	cfg := testStore(t)
	w1 := openStoreWorker(t, t.TempDir(), cfg)
	want := deployPublished(t, w1)
	info, err := w1.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	wasm := testwasm.Build(t, "examples/hello")

	w2 := openStoreWorker(t, t.TempDir(), cfg)
	if _, err := w2.DeployStored(context.Background(), "hello", wasm, Config{}, "20200101T000000-000000000000"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("deploy from a snapshot the store lacks: %v, want not found", err)
	}
	if _, err := w2.Get("hello"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a failed stored deploy left a function: %v", err)
	}
	got, err := w2.DeployStored(context.Background(), "hello", wasm, Config{}, info.Snapshot.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Snapshot == nil || got.Snapshot.ID != info.Snapshot.ID {
		t.Fatalf("follower's snapshot %+v, want the origin's %s", got.Snapshot, info.Snapshot.ID)
	}
	if st := w2.States(); len(st) != 1 || st[0].Idle+st[0].Busy != 0 {
		t.Fatalf("follower after a stored deploy: %+v; want no instance booted", st)
	}
	// The follower copies the snapshot to its disk in the background
	// and restores from that copy from then on.
	w2.WaitCheckpoints("hello")
	if st := w2.States(); len(st) != 1 || !st[0].SnapshotLocal || !st[0].WorkingSet || st[0].Snapshot != info.Snapshot.ID {
		t.Fatalf("follower after the copy: %+v; want the origin's snapshot, with its working set, on local disk", st)
	}
	if n := testutil.ToFloat64(storeOf(t, w2).pulls.WithLabelValues("ok")); n != 1 {
		t.Fatalf("%v pulls counted, want 1", n)
	}
	checkRestores(t, w2, want, SourceLocal)
}

// With the stored image and working-set chunks tampered and every cache
// empty, restores fail authentication and fall back to a cold boot, counted
// by the fallback metric. Lazy is left out: a tampered chunk found at fault
// time leaves the faulting thread blocked (docs/store.md).
func TestStoreRestoreTampered(t *testing.T) {
	cfg := dirStore(t)
	dir1 := t.TempDir()
	w1, err := Open(context.Background(), Options{DataDir: dir1, Store: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	want := deployPublished(t, w1)
	info, err := w1.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	w1.Close(context.Background())

	// Flip a byte of every image and working-set chunk in the remote.
	ctx := context.Background()
	h, err := stack.Open(ctx, stack.Config{Tenant: cfg.Tenant, Secret: cfg.Secret, Dir: cfg.Dir, QueueDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := storesnap.OpenSnapshot(ctx, h.Store, storesnap.ID("hello", info.Snapshot.ID))
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fe := range sn.Snap.Manifest().Files {
		if fe.Name != snapshot.ImageFile && fe.Name != snapshot.WSImageFile {
			continue
		}
		for _, c := range fe.Chunks {
			if c.Zero {
				continue
			}
			paths, _ := filepath.Glob(filepath.Join(cfg.Dir, "objects", "*", "*"+c.ID.String()))
			for _, p := range paths {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-1] ^= 1
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("found no chunk to tamper with")
	}

	// A fresh worker: empty disk cache, decrypted-chunk cache and
	// materialised images.
	dir2 := t.TempDir()
	copyRegistry(t, dir1, dir2, "hello")
	w := openStoreWorker(t, dir2, cfg)
	for _, mode := range []restore.Mode{restore.Eager, restore.Mmap, restore.Reap, restore.Bulk} {
		t.Run(string(mode), func(t *testing.T) {
			res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: mode})
			if res.Timing.StartKind != "cold" || res.Timing.Fallback == "" {
				t.Fatalf("start %q, fallback %q; want a cold fallback", res.Timing.StartKind, res.Timing.Fallback)
			}
			if !bytes.Equal(res.Response.Body, want) {
				t.Fatalf("fallback instance answered %q, want %q", res.Response.Body, want)
			}
			if n := testutil.ToFloat64(w.metrics.fallbacks.WithLabelValues("hello", string(mode))); n != 1 {
				t.Fatalf("%v fallbacks counted for %s, want 1", n, mode)
			}
		})
	}
	// Reap and bulk try once more after ErrCorrupt (function.restore),
	// as they do from local files: 1 + 1 + 2 + 2.
	if got := w.restorer.CorruptRestores(); got != 6 {
		t.Fatalf("CorruptRestores = %d, want 6", got)
	}
	// Lazy: the pager fetches each faulted page's chunk, which fails
	// authentication; it refuses the page (zero-filled, so nothing hangs),
	// and the worker discards the instance and answers from a cold boot.
	t.Run("lazy", func(t *testing.T) {
		res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Lazy})
		if res.Timing.StartKind != "cold" || res.Timing.Fallback == "" {
			t.Fatalf("start %q, fallback %q; want a cold retry", res.Timing.StartKind, res.Timing.Fallback)
		}
		if !bytes.Equal(res.Response.Body, want) {
			t.Fatalf("retried instance answered %q, want %q", res.Response.Body, want)
		}
	})
}

// A publish that fails (here: the snapshot directory is gone) is logged and
// counted, and does not disturb the worker.
func TestStorePublishFailureCounted(t *testing.T) {
	w := openStoreWorker(t, t.TempDir(), dirStore(t))
	w.snapStore.publish("ghost", &snapshot.Snapshot{Dir: filepath.Join(t.TempDir(), "missing"), Meta: snapshot.Meta{ID: "x"}})
	w.WaitPublishes()
	if n := testutil.ToFloat64(storeOf(t, w).publishes.WithLabelValues("ghost", "failed")); n != 1 {
		t.Fatalf("%v failed publishes counted, want 1", n)
	}
}

// A policy checkpoint (a snapshot of a live instance after request 1) is
// published like the deploy snapshot, and a restarted worker that lost its
// snapshot directories gets both back from the store.
func TestStorePublishesCheckpoints(t *testing.T) {
	cfg := dirStore(t)
	dir := t.TempDir()
	w, err := Open(context.Background(), Options{DataDir: dir, Store: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { w.Close(context.Background()) }()
	deploy(t, w, "hello", "examples/hello", Config{Policy: "fixed:1"})
	invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{})
	w.WaitCheckpoints("hello")
	w.WaitPublishes()
	info, err := w.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	if info.PoolSnapshots != 1 {
		t.Fatalf("%d pool snapshots, want the checkpoint after request 1", info.PoolSnapshots)
	}
	ids, err := storeOf(t, w).h.Store.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("store holds %q, want the deploy snapshot and the checkpoint", ids)
	}
	if n := testutil.ToFloat64(storeOf(t, w).publishes.WithLabelValues("hello", "ok")); n != 2 {
		t.Fatalf("%v successful publishes, want 2", n)
	}

	w.Close(context.Background())
	if err := os.RemoveAll(filepath.Join(dir, "snapshots")); err != nil {
		t.Fatal(err)
	}
	if w, err = Open(context.Background(), Options{DataDir: dir, Store: &cfg}); err != nil {
		t.Fatal(err)
	}
	again, err := w.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	if again.Snapshot == nil || again.Snapshot.ID != info.Snapshot.ID || again.PoolSnapshots != 1 {
		t.Fatalf("after restart: snapshot %+v, %d pool snapshots; want %s and the checkpoint", again.Snapshot, again.PoolSnapshots, info.Snapshot.ID)
	}
	res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{})
	if res.Timing.StartKind != "restore" || res.Timing.Source != SourceStore {
		t.Fatalf("start %q from %q (fallback %q), want a restore from the store", res.Timing.StartKind, res.Timing.Source, res.Timing.Fallback)
	}
}

// storeOf is w's snapshot store, which the test configured.
func storeOf(t testing.TB, w *Worker) *workerStore {
	t.Helper()
	s, ok := w.snapStore.(*workerStore)
	if !ok {
		t.Fatalf("the worker has no snapshot store (%T)", w.snapStore)
	}
	return s
}

// A follower that copied the snapshot before the origin recorded its
// working set adopts the working set the origin published afterwards on
// its first reap or bulk restore, instead of recording its own lazily.
func TestFollowerAdoptsStoredWorkingSet(t *testing.T) {
	cfg := testStore(t)
	w1 := openStoreWorker(t, t.TempDir(), cfg)
	deploy(t, w1, "hello", "examples/hello", Config{})
	w1.WaitPublishes()
	info, err := w1.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	w2 := openStoreWorker(t, t.TempDir(), cfg)
	if _, err := w2.DeployStored(context.Background(), "hello", testwasm.Build(t, "examples/hello"), Config{}, info.Snapshot.ID); err != nil {
		t.Fatal(err)
	}
	w2.WaitCheckpoints("hello")
	if st := w2.States(); len(st) != 1 || !st[0].SnapshotLocal || st[0].WorkingSet {
		t.Fatalf("follower after the copy: %+v; want the snapshot on local disk, without a working set", st)
	}

	// The origin records the working set and publishes the snapshot again.
	want := invoke(t, w1, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Cold}).Response.Body
	if rec := invoke(t, w1, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Reap}); rec.Timing.Mode != restore.Lazy {
		t.Fatalf("origin's first reap restore ran as %s; want a lazy one recording the working set", rec.Timing.Mode)
	}
	w1.WaitPublishes()

	res := invoke(t, w2, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Bulk})
	tm := res.Timing
	if tm.Fallback != "" || tm.Source != SourceLocal || tm.Mode != restore.Bulk || tm.Restore == nil || tm.Restore.WSPages == 0 {
		t.Fatalf("follower's first bulk restore: mode %s, source %q, fallback %q, stats %+v; want bulk from its local copy with the adopted working set",
			tm.Mode, tm.Source, tm.Fallback, tm.Restore)
	}
	if !bytes.Equal(res.Response.Body, want) {
		t.Fatalf("follower answered %q, the origin's cold instance %q", res.Response.Body, want)
	}
	if st := w2.States(); len(st) != 1 || !st[0].WorkingSet {
		t.Fatalf("follower after the restore: %+v; want a working set on local disk", st)
	}
}

// A worker that publishes a snapshot with its working set says so
// (Options.Published), and a follower told of it adopts the working set
// in the background (AdoptWorkingSet): its first restore is then a bulk
// one that asks the store nothing.
func TestAnnouncedWorkingSetAdopted(t *testing.T) {
	cfg := testStore(t)
	type note struct{ name, id string }
	notes := make(chan note, 16)
	w1, err := Open(context.Background(), Options{DataDir: t.TempDir(), Store: &cfg,
		Published: func(name, id string) { notes <- note{name, id} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w1.Close(context.Background()) })
	deploy(t, w1, "hello", "examples/hello", Config{})
	w1.WaitPublishes()
	info, err := w1.Get("hello")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-notes:
		t.Fatalf("announced %+v before any working set was recorded", n)
	default:
	}
	w2 := openStoreWorker(t, t.TempDir(), cfg)
	if _, err := w2.DeployStored(context.Background(), "hello", testwasm.Build(t, "examples/hello"), Config{}, info.Snapshot.ID); err != nil {
		t.Fatal(err)
	}
	w2.WaitCheckpoints("hello")
	if w2.AdoptWorkingSet(context.Background(), "hello", info.Snapshot.ID) {
		t.Fatal("adopted a working set before the origin recorded one")
	}

	want := invoke(t, w1, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Cold}).Response.Body
	invoke(t, w1, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Reap}) // records it
	w1.WaitPublishes()
	select {
	case n := <-notes:
		if n.name != "hello" || n.id != info.Snapshot.ID {
			t.Fatalf("announced %+v; want hello's snapshot %s", n, info.Snapshot.ID)
		}
	default:
		t.Fatal("the publish with a working set was not announced")
	}

	// Told of it, the follower adopts at once (the restore path's gate of
	// one store read per reopenAfter does not hold it back), and only
	// once.
	if !w2.AdoptWorkingSet(context.Background(), "hello", info.Snapshot.ID) {
		t.Fatal("the follower did not adopt the announced working set")
	}
	if st := w2.States(); len(st) != 1 || !st[0].WorkingSet {
		t.Fatalf("follower after adopting: %+v; want a working set on local disk", st)
	}
	if w2.AdoptWorkingSet(context.Background(), "hello", info.Snapshot.ID) {
		t.Fatal("adopted again over a working set it has")
	}
	if w2.AdoptWorkingSet(context.Background(), "hello", "no-such-snapshot") || w2.AdoptWorkingSet(context.Background(), "nosuch", info.Snapshot.ID) {
		t.Fatal("adopted for a snapshot or function the follower does not have")
	}
	res := invoke(t, w2, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Bulk})
	if tm := res.Timing; tm.Mode != restore.Bulk || tm.Source != SourceLocal || tm.Restore == nil || tm.Restore.WSPages == 0 {
		t.Fatalf("follower's bulk restore: mode %s, source %q, stats %+v; want bulk from its local copy", tm.Mode, tm.Source, tm.Restore)
	}
	if !bytes.Equal(res.Response.Body, want) {
		t.Fatalf("follower answered %q, the origin's cold instance %q", res.Response.Body, want)
	}
}
