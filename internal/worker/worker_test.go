package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/testwasm"
)

func TestMain(m *testing.M) {
	pager.RunIfChild(stack.OpenReaderJSON)
	if os.Getenv("THAW_TEST_DEADLOCK_CHILD") != "" {
		os.Exit(deadlockChild())
	}
	os.Exit(m.Run())
}

func openWorker(t testing.TB) *Worker {
	t.Helper()
	w, err := Open(context.Background(), Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func deploy(t testing.TB, w *Worker, name, pkg string, cfg Config) {
	t.Helper()
	if _, err := w.Deploy(context.Background(), name, testwasm.Build(t, pkg), cfg); err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
}

func get(path string) *abi.Request {
	p, q, _ := bytes.Cut([]byte(path), []byte("?"))
	return &abi.Request{Method: http.MethodGet, Path: string(p), RawQuery: string(q), Header: http.Header{}}
}

func invoke(t testing.TB, w *Worker, name string, req *abi.Request, opts InvokeOptions) *Result {
	t.Helper()
	res, err := w.Invoke(context.Background(), name, req, opts)
	if err != nil {
		t.Fatalf("invoke %s %s (mode %q): %v", name, req.Path, opts.Mode, err)
	}
	return res
}

// Every restore mode must answer exactly as a booted instance does.
func TestModesAnswerLikeBoot(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "hello", "examples/hello", Config{})
	deploy(t, w, "heavy", "examples/initheavy", Config{})
	requests := map[string][]*abi.Request{
		"hello": {get("/?name=thaw"), get("/")},
		"heavy": {get("/?q=alpha"), get("/?q=zeta"), get("/stats")},
	}
	for fn, reqs := range requests {
		for _, req := range reqs {
			want := invoke(t, w, fn, req, InvokeOptions{Mode: restore.Cold})
			if want.Timing.StartKind != "cold" {
				t.Fatalf("cold start reported as %q", want.Timing.StartKind)
			}
			for _, mode := range []restore.Mode{restore.Eager, restore.Mmap, restore.Lazy, restore.Reap, restore.Bulk, restore.Reap, restore.Bulk} {
				got := invoke(t, w, fn, req, InvokeOptions{Mode: mode, DropCache: true})
				if got.Timing.Fallback != "" {
					t.Errorf("%s %s: %s fell back: %s", fn, req.Path, mode, got.Timing.Fallback)
				}
				if got.Response.Status != want.Response.Status || !bytes.Equal(got.Response.Body, want.Response.Body) {
					t.Errorf("%s %s: %s answered %d %q, cold answered %d %q", fn, req.Path, mode,
						got.Response.Status, trim(got.Response.Body), want.Response.Status, trim(want.Response.Body))
				}
			}
		}
	}
}

func trim(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// A restored instance keeps answering like a booted one over many requests.
func TestRestoredInstanceLongRun(t *testing.T) {
	if testing.Short() {
		t.Skip("long run")
	}
	w := openWorker(t)
	deploy(t, w, "booted", "examples/jsontransform", Config{MaxInstances: 1, RestoreMode: api.ModeCold})
	deploy(t, w, "restored", "examples/jsontransform", Config{MaxInstances: 1, RestoreMode: api.ModeBulk})
	// Replace the deploy's boot instance by a restored one.
	first := invoke(t, w, "restored", get("/"), InvokeOptions{Mode: restore.Lazy})
	if first.Timing.StartKind != "restore" {
		t.Fatalf("start kind %q, want restore", first.Timing.StartKind)
	}
	for i := 0; i < 1000; i++ {
		body := fmt.Sprintf(`{"n":%d,"name":"item-%d","tags":["b","a"],"nested":{"z":1,"y":[%d,2]}}`, i, i, i)
		req := &abi.Request{Method: http.MethodPost, Path: "/", Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
		a := invoke(t, w, "booted", req, InvokeOptions{})
		req.Body = []byte(body)
		b := invoke(t, w, "restored", req, InvokeOptions{})
		if b.Timing.StartKind != "warm" {
			t.Fatalf("request %d started %q; the restored instance should stay warm", i, b.Timing.StartKind)
		}
		if a.Response.Status != b.Response.Status || !bytes.Equal(a.Response.Body, b.Response.Body) {
			t.Fatalf("request %d: booted %q, restored %q", i, trim(a.Response.Body), trim(b.Response.Body))
		}
	}
}

// Clones of one snapshot must not share randomness, and the guest's
// monotonic clock must not run backwards across a restore.
func TestUniqueness(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "heavy", "examples/initheavy", Config{})
	seen := map[string]bool{}
	for i, mode := range []restore.Mode{restore.Bulk, restore.Bulk, restore.Lazy, restore.Mmap} {
		res := invoke(t, w, "heavy", get("/rand"), InvokeOptions{Mode: mode})
		if res.Timing.StartKind != "restore" {
			t.Fatalf("clone %d was not restored: %+v", i, res.Timing)
		}
		var r map[string]any
		if err := json.Unmarshal(res.Response.Body, &r); err != nil {
			t.Fatalf("bad /rand body %q: %v", res.Response.Body, err)
		}
		for k, v := range r {
			key := k + "=" + fmt.Sprint(v)
			if seen[key] {
				t.Errorf("clone %d repeats %s of an earlier clone", i, key)
			}
			seen[key] = true
		}
	}
	info, _ := w.Get("heavy")
	snap, err := snapshot.Open(filepath.Join(w.snapDir("heavy"), info.Snapshot.ID))
	if err != nil {
		t.Fatal(err)
	}
	res := invoke(t, w, "heavy", get("/time"), InvokeOptions{Mode: restore.Bulk})
	var tm struct {
		Mono int64 `json:"mono_ns"`
	}
	if err := json.Unmarshal(res.Response.Body, &tm); err != nil {
		t.Fatalf("bad /time body %q: %v", res.Response.Body, err)
	}
	if tm.Mono < snap.Meta.State.Nanotime {
		t.Fatalf("restored guest's monotonic clock %d is behind the snapshot's %d", tm.Mono, snap.Meta.State.Nanotime)
	}
}

// The first reap restore records the working set; later ones prefetch it
// and fault far less than a lazy restore; bulk reads a cold working set
// with direct I/O.
func TestWorkingSetRecordAndPrefetch(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "heavy", "examples/initheavy", Config{})
	req := get("/?q=alpha")
	rec := invoke(t, w, "heavy", req, InvokeOptions{Mode: restore.Reap})
	if rec.Timing.Restore == nil || !rec.Timing.Restore.Recording {
		t.Fatalf("first reap restore did not record: %+v", rec.Timing)
	}
	if got := testutil.ToFloat64(w.metrics.recordings.WithLabelValues("heavy")); got != 1 {
		t.Fatalf("recordings metric = %v, want 1", got)
	}
	lazy := invoke(t, w, "heavy", req, InvokeOptions{Mode: restore.Lazy, DropCache: true})
	for _, mode := range []restore.Mode{restore.Reap, restore.Bulk} {
		res := invoke(t, w, "heavy", req, InvokeOptions{Mode: mode, DropCache: true})
		st := res.Timing.Restore
		if st == nil || st.WSPages == 0 || st.Recording {
			t.Fatalf("%s: no working-set prefetch: %+v", mode, st)
		}
		if st.Faults*10 > lazy.Timing.Restore.Faults {
			t.Errorf("%s: %d faults after prefetch, lazy had %d: want at least 10x fewer", mode, st.Faults, lazy.Timing.Restore.Faults)
		}
		// The cache was dropped: bulk reads the working set with direct
		// I/O (docs/restore.md, "Direct I/O").
		if mode == restore.Bulk && !st.Direct {
			t.Errorf("bulk: working set not read directly after the cache was dropped: %+v", st)
		}
	}
}

// A missing, truncated or corrupt snapshot or working set falls back to a
// cold boot; the request succeeds and the fallback is counted.
func TestDamagedSnapshotFallsBack(t *testing.T) {
	cases := []struct {
		name   string
		mode   restore.Mode
		damage func(s *snapshot.Snapshot) error
	}{
		{"truncated image, eager", restore.Eager, func(s *snapshot.Snapshot) error {
			return os.Truncate(s.Path(snapshot.ImageFile), 4096)
		}},
		{"flipped byte in image, eager", restore.Eager, func(s *snapshot.Snapshot) error { return flipFirstDataByte(s.Path(snapshot.ImageFile)) }},
		{"missing image, mmap", restore.Mmap, func(s *snapshot.Snapshot) error { return os.Remove(s.Path(snapshot.ImageFile)) }},
		{"flipped byte in working set, reap", restore.Reap, func(s *snapshot.Snapshot) error { return flipFirstDataByte(s.Path(snapshot.WSImageFile)) }},
		{"truncated working set, bulk", restore.Bulk, func(s *snapshot.Snapshot) error {
			return os.Truncate(s.Path(snapshot.WSImageFile), 4096)
		}},
		{"flipped byte in working set, bulk", restore.Bulk, func(s *snapshot.Snapshot) error { return flipFirstDataByte(s.Path(snapshot.WSImageFile)) }},
		{"flipped byte in an image page the call touches, lazy", restore.Lazy, flipWorkingSetPageInImage},
		{"flipped byte in an image page the call touches, mmap", restore.Mmap, flipWorkingSetPageInImage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := openWorker(t)
			deploy(t, w, "hello", "examples/hello", Config{})
			want := invoke(t, w, "hello", get("/?name=x"), InvokeOptions{Mode: restore.Cold})
			invoke(t, w, "hello", get("/?name=x"), InvokeOptions{Mode: restore.Reap}) // records the working set
			w.mu.Lock()
			snap := w.fns["hello"].ckpt.snap
			w.mu.Unlock()
			if err := c.damage(snap); err != nil {
				t.Fatal(err)
			}
			got := invoke(t, w, "hello", get("/?name=x"), InvokeOptions{Mode: c.mode})
			if got.Timing.Fallback == "" || got.Timing.StartKind != "cold" {
				t.Fatalf("damage not detected: %+v", got.Timing)
			}
			if !bytes.Equal(got.Response.Body, want.Response.Body) {
				t.Fatalf("fallback answered %q, want %q", got.Response.Body, want.Response.Body)
			}
			if n := testutil.ToFloat64(w.metrics.fallbacks.WithLabelValues("hello", string(c.mode))); n != 1 {
				t.Fatalf("fallback metric = %v, want 1", n)
			}
		})
	}
}

// damagedHeavy deploys initheavy, records its working set and flips a byte
// of a stored data page that a request to it never touches. It returns the
// function, that page and the answer a cold boot gives. (initheavy: its
// 100 MiB image has stored pages far from its 2 MiB working set; hello's
// working set reaches within 512 KiB of every stored page since its heap
// is collected before the snapshot.)
func damagedHeavy(t *testing.T) (*Worker, *function, int, *Result) {
	t.Helper()
	w, f, want := withWorkingSet(t, "heavy", "examples/initheavy", "/?q=alpha")
	page := farDataPage(t, f.ckpt.snap)
	if err := flipByte(f.ckpt.snap.Path(snapshot.ImageFile), int64(page)*snapshot.PageSize+11); err != nil {
		t.Fatal(err)
	}
	return w, f, page, want
}

// helloWithWorkingSet deploys examples/hello, records its working set with
// one reap restore, and returns a cold boot's answer.
func helloWithWorkingSet(t *testing.T) (*Worker, *function, *Result) {
	t.Helper()
	return withWorkingSet(t, "hello", "examples/hello", "/?name=x")
}

// withWorkingSet deploys the example pkg as name, records its working set
// with one reap restore serving path, and returns a cold boot's answer.
func withWorkingSet(t *testing.T, name, pkg, path string) (*Worker, *function, *Result) {
	t.Helper()
	w := openWorker(t)
	deploy(t, w, name, pkg, Config{})
	want := invoke(t, w, name, get(path), InvokeOptions{Mode: restore.Cold})
	invoke(t, w, name, get(path), InvokeOptions{Mode: restore.Reap}) // records the working set
	w.mu.Lock()
	f := w.fns[name]
	w.mu.Unlock()
	return w, f, want
}

// A restored instance is checked after every call, not only the first: a
// damaged page that no call has touched costs nothing, and the call that
// first brings it in is answered again from a cold boot. mmap verifies the
// pages the kernel mapped; the pager modes refuse the page (served as
// zeros) and count it in the page they share with the worker.
func TestDamagedPageBroughtInLater(t *testing.T) {
	for _, mode := range []restore.Mode{restore.Mmap, restore.Lazy, restore.Bulk} {
		t.Run(string(mode), func(t *testing.T) {
			w, f, page, want := damagedHeavy(t)
			fallbacks := func() float64 {
				return testutil.ToFloat64(w.metrics.fallbacks.WithLabelValues("heavy", string(mode)))
			}

			// The restore's first call does not touch the damaged page.
			got := invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{Mode: mode, DropCache: true})
			if got.Timing.Fallback != "" || got.Timing.StartKind != "restore" || fallbacks() != 0 {
				t.Fatalf("untouched damaged page %d caused a fallback: %+v", page, got.Timing)
			}
			if mode == restore.Mmap {
				if got.Timing.Restore == nil || got.Timing.Restore.Verified == 0 {
					t.Fatalf("no pages verified after the first call: %+v", got.Timing.Restore)
				}
				t.Logf("first call: %d pages verified in %v (working set %d pages, damaged page %d)",
					got.Timing.Restore.Verified, got.Timing.Verify, got.Timing.Restore.WSPages, page)
			}
			if !bytes.Equal(got.Response.Body, want.Response.Body) {
				t.Fatalf("%s answered %q, want %q", mode, got.Response.Body, want.Response.Body)
			}

			// Between calls the instance brings the damaged page in, as a
			// later call's load would (a real fault on its memory).
			inst := lastIdle(t, f)
			if inst.mode != mode {
				t.Fatalf("the most recently idle instance is %s, want %s", inst.mode, mode)
			}
			sink += inst.mem.Region.Bytes()[page*snapshot.PageSize]

			// The next call on that instance (warm) is checked and answered cold.
			got = invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{})
			if got.Timing.Fallback == "" || got.Timing.StartKind != "cold" {
				t.Fatalf("damaged page brought in by a later call not detected: %+v", got.Timing)
			}
			if !bytes.Equal(got.Response.Body, want.Response.Body) {
				t.Fatalf("fallback answered %q, want %q", got.Response.Body, want.Response.Body)
			}
			if n := fallbacks(); n != 1 {
				t.Fatalf("fallback metric = %v, want 1", n)
			}
			if !inst.Dead() {
				t.Fatal("the instance with the damaged page was kept")
			}
		})
	}
}

// A policy checkpoint reads the pages its mmap instance never touched from
// the image; when one fails its checksum there, it copies all of the
// instance's memory, which maps that page and has the instance's own check
// find it. A bad page must not be sealed into a new snapshot: the
// checkpoint is skipped and the instance discarded.
func TestCheckpointSkipsBadMmapPages(t *testing.T) {
	ctx := context.Background()
	w := openWorker(t)
	deploy(t, w, "heavy", "examples/initheavy", Config{MaxInstances: 1, Policy: "fixed:2", RestoreMode: api.ModeMmap})
	want := invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{})           // the boot instance
	invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{Mode: restore.Reap}) // records the working set; one request, no checkpoint
	w.mu.Lock()
	f := w.fns["heavy"]
	w.mu.Unlock()
	page := farDataPage(t, f.ckpt.snap)
	if err := flipByte(f.ckpt.snap.Path(snapshot.ImageFile), int64(page)*snapshot.PageSize+11); err != nil {
		t.Fatal(err)
	}
	if err := w.Evict(ctx, "heavy"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ { // an mmap restore serves requests 1 and 2; fixed:2 checkpoints after 2
		got := invoke(t, w, "heavy", get("/?q=alpha"), InvokeOptions{DropCache: i == 1})
		if got.Timing.Fallback != "" || !bytes.Equal(got.Response.Body, want.Response.Body) {
			t.Fatalf("request %d: %+v answered %q", i, got.Timing, got.Response.Body)
		}
		if i == 1 && got.Timing.Mode != restore.Mmap {
			t.Fatalf("request 1 started %s, want an mmap restore", got.Timing.Mode)
		}
	}
	w.WaitCheckpoints("heavy")
	if info, _ := w.Get("heavy"); info.PoolSnapshots != 0 {
		t.Fatalf("a checkpoint of memory with damaged page %d joined the pool", page)
	}
	if idle, _ := f.pool.counts(); idle != 0 {
		t.Fatalf("%d idle instances, want the damaged one discarded", idle)
	}
}

// lastIdle returns the instance that most recently returned to f's pool,
// once every instance has settled after its request.
func lastIdle(t *testing.T, f *function) *instance {
	t.Helper()
	f.pool.awaitSettled()
	f.pool.mu.Lock()
	defer f.pool.mu.Unlock()
	if len(f.pool.idle) == 0 {
		t.Fatal("no idle instance")
	}
	return f.pool.idle[len(f.pool.idle)-1].inst
}

// sink keeps the test's read of instance memory from being compiled away.
var sink byte

// farDataPage returns a stored (non-zero) page of the image at least 512
// KiB from every page of the recorded working set. A fault on the mapping
// also maps cached neighbours of the faulting page (fault-around, within
// the page cache's folio), so the pages an mmap restore maps are a
// superset of those it touches; 512 KiB keeps this page out of it.
func farDataPage(t *testing.T, s *snapshot.Snapshot) int {
	t.Helper()
	ws, err := s.WorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(s.Path(snapshot.ImageFile))
	if err != nil {
		t.Fatal(err)
	}
	const margin = 128
	for p := len(img)/snapshot.PageSize - 1; p >= 0; p-- {
		if bytes.Count(img[p*snapshot.PageSize:(p+1)*snapshot.PageSize], []byte{0}) == snapshot.PageSize {
			continue
		}
		near := false
		for _, r := range ws.Runs {
			if p > r.Start-margin && p < r.Start+r.Count+margin {
				near = true
				break
			}
		}
		if !near {
			return p
		}
	}
	t.Fatalf("no stored page of the %d-page image is %d pages from the working set", len(img)/snapshot.PageSize, margin)
	return 0
}

func flipByte(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	_, err = f.WriteAt([]byte{b[0] ^ 0x55}, off)
	return err
}

// flipWorkingSetPageInImage damages, in the image, a page the recorded
// working set says the first call touches, so a lazy restore must fault it
// in through the pager.
func flipWorkingSetPageInImage(s *snapshot.Snapshot) error {
	ws, err := s.WorkingSet()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.Path(snapshot.ImageFile), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	off := int64(ws.Runs[len(ws.Runs)/2].Start)*snapshot.PageSize + 7
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	_, err = f.WriteAt([]byte{b[0] ^ 0x55}, off)
	return err
}

func flipFirstDataByte(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for i := range b {
		if b[i] != 0 {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte{b[i] ^ 0x55}, int64(i))
			return err
		}
	}
	return errors.New("no data byte to flip")
}

// More concurrent faulting instances than GOMAXPROCS, including
// GOMAXPROCS=1, must complete. A deadlock would hang the whole process, so
// the scenario runs in a child process that the test kills at a deadline.
func TestNoDeadlockUnderConcurrentFaults(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run("GOMAXPROCS="+strconv.Itoa(procs), func(t *testing.T) {
			wasmPath := filepath.Join(t.TempDir(), "heavy.wasm")
			if err := os.WriteFile(wasmPath, testwasm.Build(t, "examples/initheavy"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "THAW_TEST_DEADLOCK_CHILD=1", "GOMAXPROCS="+strconv.Itoa(procs),
				"THAW_TEST_WASM="+wasmPath)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("concurrent faulting instances hung (killed at the deadline):\n%s", out)
			}
			if err != nil {
				t.Fatalf("child failed: %v\n%s", err, out)
			}
			if !bytes.Contains(out, []byte("deadlock-child: ok")) {
				t.Fatalf("child did not finish its work:\n%s", out)
			}
		})
	}
}

// deadlockChild runs 8 concurrent lazy restores of an init-heavy function,
// each faulting thousands of pages, at the GOMAXPROCS it was started with.
func deadlockChild() int {
	const n = 8
	dir, err := os.MkdirTemp("", "thaw-deadlock-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	w, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer w.Close(ctx)
	wasm, err := os.ReadFile(os.Getenv("THAW_TEST_WASM"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if _, err := w.Deploy(ctx, "heavy", wasm, Config{MaxInstances: n}); err != nil {
		fmt.Println(err)
		return 1
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := w.Invoke(ctx, "heavy", get("/?q=alpha"), InvokeOptions{Mode: restore.Lazy})
			if err == nil && (res.Timing.Restore == nil || res.Timing.Restore.Faults == 0) {
				err = fmt.Errorf("no lazy faults served: %+v", res.Timing)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			fmt.Println("deadlock-child:", err)
			return 1
		}
	}
	fmt.Printf("deadlock-child: ok (GOMAXPROCS=%d, %d instances)\n", runtime.GOMAXPROCS(0), n)
	return 0
}

func TestDeployRejectsBadModules(t *testing.T) {
	w := openWorker(t)
	for name, wasm := range map[string][]byte{
		"garbage":      []byte("not wasm at all"),
		"empty module": {0, 'a', 's', 'm', 1, 0, 0, 0},
	} {
		_, err := w.Deploy(context.Background(), "bad", wasm, Config{})
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: Deploy = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := w.Get("bad"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a rejected module was registered: %v", err)
	}
}

func TestGuestFaults(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "faulty", "examples/faulty", Config{Timeout: api.Duration(2 * time.Second), MemoryMiB: 64})
	for _, c := range []struct {
		path string
		want error
	}{
		{"/panic", errdefs.ErrGuest},
		{"/trap", errdefs.ErrGuest},
		{"/loop", errdefs.ErrTimeout},
		{"/oom", errdefs.ErrGuest},
	} {
		_, err := w.Invoke(context.Background(), "faulty", get(c.path), InvokeOptions{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.path, err, c.want)
		}
		res := invoke(t, w, "faulty", get("/ok"), InvokeOptions{})
		if res.Response.Status != 200 {
			t.Errorf("after %s: /ok answered %d", c.path, res.Response.Status)
		}
	}
}

func TestScaleToZeroAndPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	w, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	deploy(t, w, "hello", "examples/hello", Config{KeepAlive: api.Duration(200 * time.Millisecond)})
	invoke(t, w, "hello", get("/"), InvokeOptions{})
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := w.Get("hello")
		if info.Idle+info.Busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances never scaled to zero: %+v", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.Close(ctx)

	w2, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(ctx)
	res := invoke(t, w2, "hello", get("/?name=again"), InvokeOptions{})
	if res.Timing.StartKind != "restore" {
		t.Errorf("after restart the function started %q, want a restore from its persisted snapshot", res.Timing.StartKind)
	}
}

func TestQueueBound(t *testing.T) {
	w := openWorker(t)
	deploy(t, w, "faulty", "examples/faulty", Config{MaxInstances: 1, MaxQueue: 1, Timeout: api.Duration(time.Second)})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.Invoke(context.Background(), "faulty", get("/loop"), InvokeOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	overloaded := 0
	for err := range errs {
		if errors.Is(err, errdefs.ErrOverloaded) {
			overloaded++
		}
	}
	if overloaded == 0 {
		t.Fatal("no request was refused past the queue bound")
	}
}

// A working set that misses too often is extended by the pages the restore
// faulted on, not deleted: the next restore installs them ahead and faults
// on none, and no restore has to run lazily to record a new one.
func TestWorkingSetExtendedOnMisses(t *testing.T) {
	w, f, want := helloWithWorkingSet(t)
	full, err := f.ckpt.snap.WorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	// Keep only the first run: the next restore misses the rest.
	first := full.Runs[0]
	var kept []int
	for p := first.Start; p < first.Start+first.Count; p++ {
		kept = append(kept, p)
	}
	if _, err := f.ckpt.snap.WriteWorkingSet(kept); err != nil {
		t.Fatal(err)
	}
	recordings := func() float64 { return testutil.ToFloat64(w.metrics.recordings.WithLabelValues("hello")) }
	before := recordings()

	got := invoke(t, w, "hello", get("/?name=x"), InvokeOptions{Mode: restore.Bulk})
	st := got.Timing.Restore
	if st == nil || st.Mode != restore.Bulk || st.WSPages != len(kept) || st.Faults <= int64(len(kept)/4) {
		t.Fatalf("restore with the cut working set: %+v, want bulk missing more than a quarter of %d pages", st, len(kept))
	}
	if !bytes.Equal(got.Response.Body, want.Response.Body) {
		t.Fatalf("answered %q, want %q", got.Response.Body, want.Response.Body)
	}
	w.WaitCheckpoints("hello") // the extension is written in the background
	ws, err := f.ckpt.snap.WorkingSet()
	if err != nil {
		t.Fatalf("working set deleted instead of extended: %v", err)
	}
	if ws.Pages != len(kept)+int(st.Faults) || recordings() != before+1 {
		t.Fatalf("extended working set has %d pages, want %d + %d faulted; recordings %v -> %v", ws.Pages, len(kept), st.Faults, before, recordings())
	}

	got = invoke(t, w, "hello", get("/?name=x"), InvokeOptions{Mode: restore.Bulk, DropCache: true})
	if st := got.Timing.Restore; st == nil || st.Mode != restore.Bulk || st.WSPages != ws.Pages || st.Faults != 0 {
		t.Fatalf("restore after the extension: %+v, want bulk with %d pages and no faults", st, ws.Pages)
	}
	if !bytes.Equal(got.Response.Body, want.Response.Body) {
		t.Fatalf("answered %q, want %q", got.Response.Body, want.Response.Body)
	}
}

// The deploy snapshot is taken after the guest's before-snapshot hook: the
// Go SDK collects garbage there, so an instance restored from it has run
// exactly one more GC cycle than a cold boot has at its first request.
func TestBeforeSnapshotHook(t *testing.T) {
	ctx := context.Background()
	w := openWorker(t)
	deploy(t, w, "snap", "examples/faulty", Config{MaxInstances: 1})
	deploy(t, w, "boot", "examples/faulty", Config{MaxInstances: 1, RestoreMode: api.ModeCold})
	for _, name := range []string{"snap", "boot"} {
		if err := w.Evict(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	restored := invoke(t, w, "snap", get("/gcs"), InvokeOptions{})
	booted := invoke(t, w, "boot", get("/gcs"), InvokeOptions{})
	if restored.Timing.StartKind != "restore" || booted.Timing.StartKind != "cold" {
		t.Fatalf("starts %s and %s, want restore and cold", restored.Timing.StartKind, booted.Timing.StartKind)
	}
	var r, b int
	if _, err := fmt.Sscan(string(restored.Response.Body), &r); err != nil {
		t.Fatalf("restored /gcs: %q: %v", restored.Response.Body, err)
	}
	if _, err := fmt.Sscan(string(booted.Response.Body), &b); err != nil {
		t.Fatalf("booted /gcs: %q: %v", booted.Response.Body, err)
	}
	if r != b+1 {
		t.Errorf("restored instance has run %d GC cycles, a cold boot %d: want one more, the hook's", r, b)
	}
}
