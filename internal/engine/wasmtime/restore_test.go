//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/testproc"
	"github.com/thaw-run/thaw/internal/testwasm"
	"github.com/thaw-run/thaw/internal/uffd"
)

func TestMain(m *testing.M) {
	pager.RunIfChild(stack.OpenReaderJSON)
	d, err := os.MkdirTemp("", "thaw-wasmtime-cache-")
	if err != nil {
		panic(err)
	}
	cacheDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// fixture is examples/hello compiled on wasmtime, a snapshot of a booted
// instance with a recorded working set, the booted instance's answers and
// a pager.
type fixture struct {
	mod   *Module
	pager *pager.Pager
	snap  *snapshot.Snapshot
	want  []string
}

// requests are what the fixture's instances answer: the last grows the
// memory (the SDK's request buffer for a 16 MiB body).
var requests = func() []*request {
	big := &request{path: "/big", query: "name=big", body: make([]byte, 16<<20)}
	return []*request{{path: "/x", query: "name=thaw"}, {path: "/", query: "name=r"}, big, {path: "/after", query: "name=grow"}}
}()

type request struct {
	path, query string
	body        []byte
}

func (r *request) abi() *abi.Request {
	req := get(r.path, r.query)
	if r.body != nil {
		req.Method, req.Body = http.MethodPost, r.body
	}
	return req
}

func (r *request) invoke(t testing.TB, inst engine.Instance) string {
	t.Helper()
	resp, err := inst.Invoke(context.Background(), r.abi())
	if err != nil {
		t.Fatalf("%s: %v", r.path, err)
	}
	return string(resp.Body)
}

var (
	fixOnce sync.Once
	fix     *fixture
)

func helloFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix = newFixture(t) })
	if fix == nil {
		t.Fatal("fixture failed in an earlier test")
	}
	return fix
}

func newFixture(t *testing.T) *fixture {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "thaw-wasmtime-")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(ctx, engine.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	em, err := e.Compile(ctx, testwasm.Build(t, "examples/hello"))
	if err != nil {
		t.Fatal(err)
	}
	mod := em.(*Module)
	bi, _, err := mod.Boot(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	inst := bi.(*Instance)
	st, mem := inst.Capture()
	snap, err := snapshot.Write(filepath.Join(dir, "snap"), snapshot.Meta{ID: "s1", Function: "hello", State: *st}, mem)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{mod: mod, snap: snap}
	for _, r := range requests {
		f.want = append(f.want, r.invoke(t, inst))
	}
	inst.Close(ctx)
	if f.pager, err = pager.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Record the working set as the worker does: a lazy restore with
	// recording, one request, then the trace.
	m, err := (&restore.Restorer{Pager: f.pager}).Prepare(ctx, restore.Lazy, restore.Files(snap), cfg.MemoryLimit, true)
	if err != nil {
		t.Fatal(err)
	}
	ri, err := mod.Restore(ctx, cfg, &snap.Meta.State, m.Region)
	if err != nil {
		t.Fatal(err)
	}
	requests[0].invoke(t, ri.(*Instance))
	trace, err := m.Trace()
	ri.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.WriteWorkingSet(trace); err != nil {
		t.Fatal(err)
	}
	return f
}

// Every restore mode gives an instance that answers as the booted one
// did, request after request, across a memory grow.
func TestRestoreModes(t *testing.T) {
	f := helloFixture(t)
	r := &restore.Restorer{Pager: f.pager}
	for _, mode := range []restore.Mode{restore.Eager, restore.Mmap, restore.Lazy, restore.Reap, restore.Bulk} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			m, err := r.Prepare(ctx, mode, restore.Files(f.snap), cfg.MemoryLimit, false)
			if err != nil {
				t.Fatal(err)
			}
			ri, err := f.mod.Restore(ctx, cfg, &f.snap.Meta.State, m.Region)
			if err != nil {
				t.Fatal(err)
			}
			defer ri.Close(ctx)
			inst := ri.(*Instance)
			pages := inst.Region().Size()
			for i, req := range requests {
				if got := req.invoke(t, inst); got != f.want[i] {
					t.Fatalf("request %d: restored %q, booted %q", i, got, f.want[i])
				}
			}
			if inst.Region().Size() <= pages {
				t.Fatalf("memory did not grow: %d bytes before, %d after", pages, inst.Region().Size())
			}
			if st := m.Stats(); mode == restore.Lazy && st.Faults == 0 {
				t.Fatalf("lazy restore served no faults: %+v", st)
			}
		})
	}
}

// More lazily restored instances than GOMAXPROCS fault at once: every one
// answers. With the pager stopped they all block in page faults, and the
// Go scheduler still runs (a ticker ticks and a GC completes), because the
// first fault of each is taken in guest code, inside a cgo call, whose
// thread has released its P. The faults are answered once the pager runs
// again, for a small request and for one that grows the memory by 16 MiB.
func TestFaultingInstancesKeepSchedulerRunning(t *testing.T) {
	f := helloFixture(t)
	invoke := func(req *request) func(*Instance) (string, error) {
		return func(inst *Instance) (string, error) {
			resp, err := inst.Invoke(context.Background(), req.abi())
			if err != nil {
				return "", err
			}
			return string(resp.Body), nil
		}
	}
	t.Run("small", func(t *testing.T) { testFaultingInstances(t, f, invoke(requests[0]), f.want[0]) })
	t.Run("16MiB", func(t *testing.T) { testFaultingInstances(t, f, invoke(requests[2]), f.want[2]) })
	// Host code that writes guest memory (here the clock's answer) faults
	// on a missing page as guest code does, and must not hold a P either.
	// Guest code usually faults first; this calls the host function
	// directly, on the last page of the image (which the pager serves;
	// memory past it is not registered) that is still missing once the
	// pager is stopped: the restore hook's faults and the pager's
	// readahead install some pages, which ones varies from run to run.
	t.Run("host", func(t *testing.T) {
		testFaultingInstances(t, f, func(inst *Instance) (string, error) {
			present, err := inst.g.region.Present(uint64(f.snap.Meta.ImageSize))
			if err != nil {
				return "", err
			}
			missing := -1
			for p, ok := range present {
				if !ok {
					missing = p
				}
			}
			if missing < 0 {
				return "", errors.New("no page of the image is missing")
			}
			args := []wasmtime.Val{wasmtime.ValI32(1), wasmtime.ValI64(0), wasmtime.ValI32(int32(missing * uffd.PageSize))}
			return fmt.Sprint(clockTimeGet(inst.g, args)), nil
		}, fmt.Sprint(errnoSuccess))
	})
}

// testFaultingInstances runs call on n lazily restored instances at once
// while their pager is stopped, and checks that a ticker and a GC run on
// meanwhile, then that every call returns want once the pager resumes.
func testFaultingInstances(t *testing.T, f *fixture, call func(*Instance) (string, error), want string) {
	ctx := context.Background()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	const n = 4
	r := &restore.Restorer{Pager: f.pager}
	insts := make([]engine.Instance, n)
	// The instances close only once every call on them has returned, also
	// when the test fails: closing one under a running call frees the
	// code and memory it runs on.
	calling := false
	defer func() {
		for _, inst := range insts {
			if inst != nil && !calling {
				inst.Close(ctx)
			}
		}
	}()
	for i := range insts {
		m, err := r.Prepare(ctx, restore.Lazy, restore.Files(f.snap), cfg.MemoryLimit, false)
		if err != nil {
			t.Fatal(err)
		}
		if insts[i], err = f.mod.Restore(ctx, cfg, &f.snap.Meta.State, m.Region); err != nil {
			t.Fatal(err)
		}
	}
	// Every thread of the pager must be stopped before the calls start: a
	// thread that has not stopped yet may still answer a fault.
	pid := f.pager.Pid()
	testproc.Stop(t, pid)
	stopped := true
	cont := func() {
		if stopped {
			stopped = false
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer cont()
	type answer struct {
		body string
		err  error
	}
	got := make(chan answer, n)
	calling = true
	for _, inst := range insts {
		go func() {
			body, err := call(inst.(*Instance))
			got <- answer{body, err}
		}()
	}
	// While every instance waits on the stopped pager: a ticker and a GC.
	const window = time.Second
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	ticks, end := 0, time.After(window)
	gcDone := make(chan time.Duration, 1)
	t0 := time.Now()
	go func() {
		runtime.GC()
		gcDone <- time.Since(t0)
	}()
	var gc time.Duration = -1
	var answers []answer
wait:
	for {
		select {
		case <-tick.C:
			ticks++
		case gc = <-gcDone:
		case a := <-got:
			answers = append(answers, a)
		case <-end:
			break wait
		}
	}
	wall := time.Since(t0)
	early := len(answers)
	cont()
	for len(answers) < n {
		select {
		case a := <-got:
			answers = append(answers, a)
		case <-time.After(time.Minute):
			t.Fatal("the faults were never answered after the pager resumed")
		}
	}
	calling = false
	t.Logf("GOMAXPROCS=%d, %d instances blocked on faults: a %v window took %v, %d ticks of 1 ms, GC took %v (-1: not done)", runtime.GOMAXPROCS(0), n, window, wall.Round(time.Millisecond), ticks, gc)
	if early > 0 {
		t.Errorf("%d instances answered while the pager was stopped: %+v", early, answers[:early])
	}
	if ticks == 0 || gc < 0 {
		t.Errorf("the scheduler stalled: %d ticks, GC %v", ticks, gc)
	}
	for _, a := range answers {
		if a.err != nil || a.body != want {
			t.Errorf("answered %.100q, %v; want %.100q", a.body, a.err, want)
		}
	}
}
