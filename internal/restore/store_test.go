package restore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	_ "github.com/thaw-run/thaw/internal/engine/wasmtime" // with cgo
	_ "github.com/thaw-run/thaw/internal/engine/wazero"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/storesnap"
	"github.com/thaw-run/thaw/internal/testwasm"
)

func TestMain(m *testing.M) {
	pager.RunIfChild(stack.OpenReaderJSON)
	os.Exit(m.Run())
}

var instCfg = engine.InstanceConfig{MemoryLimit: 256 << 20, Timeout: 30 * time.Second}

func get(path, query string) *abi.Request {
	return &abi.Request{Method: http.MethodGet, Path: path, RawQuery: query, Header: http.Header{}}
}

// fixture is a compiled examples/hello, a snapshot of it with a recorded
// working set, the answer a booted instance gives, and a pager.
type fixture struct {
	mod   engine.Module
	pager *pager.Pager
	snap  *snapshot.Snapshot
	want  []byte
}

var (
	fixMu sync.Mutex
	fixes = map[string]*fixture{}
)

// helloFixture is the fixture on the default engine.
func helloFixture(t *testing.T) *fixture { return engineFixture(t, engine.Default()) }

// engineFixture is the fixture on the engine name, made once per test
// binary.
func engineFixture(t *testing.T, name string) *fixture {
	t.Helper()
	fixMu.Lock()
	defer fixMu.Unlock()
	if f := fixes[name]; f != nil {
		return f
	}
	f, err := newFixture(t, name)
	if err != nil {
		t.Fatal(err)
	}
	fixes[name] = f
	return f
}

func newFixture(t *testing.T, name string) (*fixture, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "thaw-restore-store-")
	if err != nil {
		return nil, err
	}
	e, err := engine.Open(ctx, name, engine.Config{CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		return nil, err
	}
	mod, err := e.Compile(ctx, testwasm.Build(t, "examples/hello"))
	if err != nil {
		return nil, err
	}
	inst, _, err := mod.Boot(ctx, instCfg)
	if err != nil {
		return nil, err
	}
	st, mem := inst.Capture()
	snap, err := snapshot.Write(filepath.Join(dir, "snap"), snapshot.Meta{ID: "s1", Function: "hello", State: *st}, mem)
	if err != nil {
		return nil, err
	}
	resp, err := inst.Invoke(ctx, get("/x", "name=thaw"))
	inst.Close(ctx)
	if err != nil {
		return nil, err
	}
	p, err := pager.Start(ctx)
	if err != nil {
		return nil, err
	}
	f := &fixture{mod: mod, pager: p, snap: snap, want: resp.Body}
	// Record the working set as the worker does: one lazy restore with
	// recording, one request, then the trace.
	r := &Restorer{Pager: p}
	m, err := r.Prepare(ctx, Lazy, Files(snap), instCfg.MemoryLimit, true)
	if err != nil {
		return nil, err
	}
	ri, err := mod.Restore(ctx, instCfg, &snap.Meta.State, m.Region)
	if err != nil {
		return nil, err
	}
	if _, err := ri.Invoke(ctx, get("/x", "name=thaw")); err != nil {
		return nil, err
	}
	trace, err := m.Trace()
	ri.Close(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := snap.WriteWorkingSet(trace); err != nil {
		return nil, err
	}
	return f, nil
}

// dirConfig is a store on a local directory, with a disk cache.
func dirConfig(t *testing.T) stack.Config {
	d := t.TempDir()
	return stack.Config{Tenant: "t1", Secret: storetest.Secret(t), Dir: filepath.Join(d, "remote"), CacheDir: filepath.Join(d, "cache")}
}

// s3Config is a store on the MinIO of scripts/minio.sh, if it is running.
func s3Config(t *testing.T) stack.Config {
	ep := os.Getenv("THAW_TEST_S3_ENDPOINT")
	if ep == "" {
		t.Skip("THAW_TEST_S3_ENDPOINT not set: run scripts/minio.sh start; eval \"$(scripts/minio.sh env)\"")
	}
	d := t.TempDir()
	return stack.Config{Tenant: "t1", Secret: storetest.Secret(t), CacheDir: filepath.Join(d, "cache"), S3: &s3.Config{
		Endpoint: ep, AccessKey: os.Getenv("THAW_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("THAW_TEST_S3_SECRET_KEY"),
		Region: os.Getenv("THAW_TEST_S3_REGION"), Bucket: "thaw-restore-test", Prefix: "run-" + strconv.FormatInt(time.Now().UnixNano(), 36)}}
}

// publish puts the fixture's snapshot into the store of cfg and opens it
// from the store alone, through a fresh handle (no local file is used).
func publish(t *testing.T, f *fixture, cfg stack.Config) (*stack.Handle, *storesnap.Snapshot) {
	t.Helper()
	ctx := context.Background()
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := storesnap.Publish(ctx, h.Store, "hello.s1", f.snap)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := f.snap.WorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks == 0 || ws.Pages == 0 {
		t.Fatalf("published %+v, working set %d pages", res, ws.Pages)
	}
	h.Close()
	// A second handle: nothing cached in memory from the Put.
	h, err = stack.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	sn, err := storesnap.OpenSnapshot(ctx, h.Store, "hello.s1")
	if err != nil {
		t.Fatal(err)
	}
	if sn.WS == nil || sn.WS.Pages != ws.Pages || sn.Meta.ImageSize != f.snap.Meta.ImageSize {
		t.Fatalf("opened %+v, want working set of %d pages", sn.Meta, ws.Pages)
	}
	return h, sn
}

// restoreAndCall restores from the store in mode and returns the answer.
func restoreAndCall(t *testing.T, f *fixture, r *Restorer, mode Mode, src Source) ([]byte, Stats) {
	t.Helper()
	ctx := context.Background()
	m, err := r.Prepare(ctx, mode, src, instCfg.MemoryLimit, false)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := f.mod.Restore(ctx, instCfg, &src.Meta().State, m.Region)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	resp, err := inst.Invoke(ctx, get("/x", "name=thaw"))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Body, m.Stats()
}

// testAllModes restores the hello fixture from src in every mode and calls
// it: the instance answers as a booted one.
func testAllModes(t *testing.T, f *fixture, src Source, ws *snapshot.WorkingSet) {
	r := &Restorer{Pager: f.pager}
	for _, mode := range []Mode{Eager, Mmap, Lazy, Reap, Bulk} {
		t.Run(string(mode), func(t *testing.T) {
			got, st := restoreAndCall(t, f, r, mode, src)
			if !bytes.Equal(got, f.want) {
				t.Fatalf("restored instance answered %q, booted one %q", got, f.want)
			}
			switch mode {
			case Lazy:
				if st.Faults == 0 {
					t.Fatalf("lazy restore served no faults: %+v", st)
				}
			case Reap, Bulk:
				if st.WSPages != ws.Pages {
					t.Fatalf("installed %d working-set pages, want %d", st.WSPages, ws.Pages)
				}
			case Eager:
				if st.BytesRead == 0 {
					t.Fatalf("read nothing: %+v", st)
				}
			}
		})
	}
}

// Every mode restores the hello snapshot from its local files, and from a
// store (a local directory backend) that alone holds it, and the instance
// answers as a booted one, on every engine.
func TestModesAnswerLikeBoot(t *testing.T) {
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			f := engineFixture(t, name)
			ws, err := f.snap.WorkingSet()
			if err != nil {
				t.Fatal(err)
			}
			t.Run("files", func(t *testing.T) { testAllModes(t, f, Files(f.snap), ws) })
			t.Run("store", func(t *testing.T) {
				cfg := dirConfig(t)
				_, sn := publish(t, f, cfg)
				testAllModes(t, f, (&Store{Config: cfg, CacheDir: t.TempDir()}).Snapshot(sn), ws)
			})
		})
	}
}

// A restore from the store says which tiers served its chunks: through
// a disk cache that does not have them, a lazy restore's faults (served in
// the pager child, counted in the page it shares) come from the remote;
// an eager restore then finds in the disk cache what the child added to
// it, and the remote serves the rest. A restore from local files counts
// nothing.
func TestStoreRestoreTiers(t *testing.T) {
	ctx := context.Background()
	f := helloFixture(t)
	cfg := dirConfig(t)
	publish(t, f, cfg) // fills cfg's cache: use another
	cfg.CacheDir = filepath.Join(t.TempDir(), "cache")
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sn, err := storesnap.OpenSnapshot(ctx, h.Store, "hello.s1")
	if err != nil {
		t.Fatal(err)
	}
	src := (&Store{Config: cfg, CacheDir: t.TempDir()}).Snapshot(sn)
	r := &Restorer{Pager: f.pager}
	_, lazy := restoreAndCall(t, f, r, Lazy, src)
	if lazy.Store.Remote == 0 || lazy.Store.Peer != 0 || lazy.Store.Most() != store.TierRemote {
		t.Fatalf("lazy restore through an empty cache: tiers %+v, want the remote first", lazy.Store)
	}
	_, eager := restoreAndCall(t, f, r, Eager, src)
	if eager.Store.Total() == 0 || eager.Store.Peer != 0 {
		t.Fatalf("eager restore: tiers %+v, want bytes from the cache and the remote", eager.Store)
	}
	_, again := restoreAndCall(t, f, r, Eager, src)
	if again.Store.Remote != 0 || again.Store.Most() != store.TierCache {
		t.Fatalf("second eager restore: tiers %+v, want the cache only", again.Store)
	}
	if _, files := restoreAndCall(t, f, r, Eager, Files(f.snap)); files.Store.Total() != 0 {
		t.Fatalf("restore from local files: tiers %+v, want none", files.Store)
	}
}

// The same from a store on a real S3 server (MinIO on loopback); an mmap
// restore reads every chunk to materialise the image.
func TestStoreRestoreModesS3(t *testing.T) {
	f := helloFixture(t)
	cfg := s3Config(t)
	_, sn := publish(t, f, cfg)
	testAllModes(t, f, (&Store{Config: cfg, CacheDir: t.TempDir()}).Snapshot(sn), sn.WS)
}

// A tampered chunk is detected: eager, mmap, reap and bulk restores fail
// with ErrCorrupt before any of its bytes reach a region, and are counted.
func TestStoreRestoreTampered(t *testing.T) {
	f := helloFixture(t)
	cfg := dirConfig(t)
	cfg.CacheDir = "" // the remote is the only copy
	publish(t, f, cfg)
	// Flip one byte in every stored chunk.
	n := 0
	err := filepath.WalkDir(cfg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !bytes.Contains([]byte(d.Name()), []byte("chunks~")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0x40
		n++
		return os.WriteFile(path, b, 0o600)
	})
	if err != nil || n == 0 {
		t.Fatalf("tampered %d chunks: %v", n, err)
	}
	ctx := context.Background()
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// meta.json's chunk is tampered too: opening fails already.
	if _, err := storesnap.OpenSnapshot(ctx, h.Store, "hello.s1"); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("opening a tampered snapshot: %v, want ErrCorrupt", err)
	}
}

// With only the image's chunks tampered (metadata intact), every prefetching
// mode fails with ErrCorrupt and counts it.
func TestStoreRestoreTamperedImage(t *testing.T) {
	f := helloFixture(t)
	cfg := dirConfig(t)
	cfg.CacheDir = ""
	h, sn := publish(t, f, cfg)
	// Tamper with every chunk of memory.img and ws.img, leaving the
	// metadata files' chunks intact.
	keep := map[string]bool{}
	for _, fe := range sn.Snap.Manifest().Files {
		if fe.Name == snapshot.MetaFile || fe.Name == snapshot.WSMetaFile || fe.Name == snapshot.CRCFile {
			for _, c := range fe.Chunks {
				keep[c.ID.String()] = true
			}
		}
	}
	n := 0
	for _, fe := range sn.Snap.Manifest().Files {
		for _, c := range fe.Chunks {
			if c.Zero || keep[c.ID.String()] {
				continue
			}
			matches, _ := filepath.Glob(filepath.Join(cfg.Dir, "objects", "*", "*"+c.ID.String()))
			for _, path := range matches {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-1] ^= 1
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("found no chunk to tamper with")
	}
	h.Close()
	ctx := context.Background()
	h2, err := stack.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	sn2, err := storesnap.OpenSnapshot(ctx, h2.Store, "hello.s1")
	if err != nil {
		t.Fatal(err)
	}
	r, src := &Restorer{Pager: f.pager}, (&Store{Config: cfg, CacheDir: t.TempDir()}).Snapshot(sn2)
	modes := []Mode{Eager, Mmap, Reap, Bulk}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			m, err := r.Prepare(ctx, mode, src, instCfg.MemoryLimit, false)
			if err == nil {
				m.Region.Free()
				t.Fatal("restore of a tampered snapshot succeeded")
			}
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
	if got := r.CorruptRestores(); got != int64(len(modes)) {
		t.Fatalf("CorruptRestores = %d, want %d", got, len(modes))
	}
	if h2.Store.Counters().Corrupt == 0 {
		t.Fatal("the store counted no corrupt chunk")
	}
}

// Concurrent lazy restores from the store at GOMAXPROCS=1 complete, on
// every engine: every fault is served by the pager child, which fetches
// chunks itself, so no faulting thread waits on the main process.
func TestStoreLazyGOMAXPROCS1(t *testing.T) {
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) { testStoreLazyGOMAXPROCS1(t, engineFixture(t, name)) })
	}
}

func testStoreLazyGOMAXPROCS1(t *testing.T, f *fixture) {
	cfg := dirConfig(t)
	_, sn := publish(t, f, cfg)
	r, src := &Restorer{Pager: f.pager}, (&Store{Config: cfg}).Snapshot(sn)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			ctx := context.Background()
			m, err := r.Prepare(ctx, Lazy, src, instCfg.MemoryLimit, false)
			if err != nil {
				errs <- err
				return
			}
			inst, err := f.mod.Restore(ctx, instCfg, &sn.Meta.State, m.Region)
			if err != nil {
				errs <- err
				return
			}
			defer inst.Close(ctx)
			resp, err := inst.Invoke(ctx, get("/x", "name=thaw"))
			if err == nil && !bytes.Equal(resp.Body, f.want) {
				err = errors.New("wrong answer " + string(resp.Body))
			}
			errs <- err
		}()
	}
	// A deadlock never completes; the bound only turns a hang into a
	// failure instead of the test binary's timeout.
	deadline := time.After(3 * time.Minute)
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("concurrent store-backed lazy restores at GOMAXPROCS=1 did not finish: deadlock")
		}
	}
}
