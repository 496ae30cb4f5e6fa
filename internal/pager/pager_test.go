package pager

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/thaw-run/thaw/internal/engine"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testproc"
	"github.com/thaw-run/thaw/internal/uffd"
)

// envScenario makes the test binary run one scenario in a subprocess, so a
// deadlock fails the parent test at a deadline instead of hanging it.
const envScenario = "THAW_PAGER_TEST_SCENARIO"

func TestMain(m *testing.M) {
	RunIfChild(nil)
	if sc := os.Getenv(envScenario); sc != "" {
		os.Exit(runScenario(sc))
	}
	os.Exit(m.Run())
}

func needUffd(t testing.TB) {
	t.Helper()
	if err := uffd.Available(); err != nil {
		t.Skipf("userfaultfd unavailable (/dev/userfaultfd and the system call both refused): %v", err)
	}
}

func startPager(t testing.TB) *Pager {
	t.Helper()
	return startPagerWith(t, true)
}

func startPagerWith(t testing.TB, standby bool) *Pager {
	t.Helper()
	p, err := start(context.Background(), standby)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// image describes a test image: page i holds pattern(i) unless it is a
// hole; the file is size bytes long (it may end inside a page).
type image struct {
	pages int
	holes map[int]bool
	size  int64
	// content is what the region must read as, for regionPages pages.
	content []byte
	path    string
}

func pattern(seed, page int) []byte {
	b := make([]byte, pageSize)
	r := rand.New(rand.NewPCG(uint64(seed), uint64(page)))
	for i := range b {
		b[i] = byte(r.Uint32() | 1) // never zero, so a zero page is visible
	}
	return b
}

// writeImage writes a sparse image of dataPages pages (holes left unwritten)
// whose last page is cut to tail bytes (0: whole), and returns it with the
// expected content of a region of regionPages pages.
func writeImage(t testing.TB, dir string, seed, dataPages, regionPages, tail int, holes ...int) *image {
	t.Helper()
	img := &image{pages: dataPages, holes: map[int]bool{}, path: filepath.Join(dir, fmt.Sprintf("image-%d", seed))}
	for _, h := range holes {
		img.holes[h] = true
	}
	img.size = int64(dataPages) * pageSize
	if tail > 0 {
		img.size -= int64(pageSize - tail)
	}
	f, err := os.Create(img.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(img.size); err != nil {
		t.Fatal(err)
	}
	img.content = make([]byte, regionPages*pageSize)
	for p := range dataPages {
		if img.holes[p] {
			continue
		}
		b := pattern(seed, p)
		if off := int64(p) * pageSize; off+pageSize > img.size {
			b = b[:img.size-off]
		}
		if _, err := f.WriteAt(b, int64(p)*pageSize); err != nil {
			t.Fatal(err)
		}
		copy(img.content[p*pageSize:], b)
	}
	return img
}

// region is an anonymous mapping registered with its own userfaultfd.
type region struct {
	mem []byte
	u   *uffd.FD
}

func newRegion(t testing.TB, pages int) *region {
	t.Helper()
	mem, err := uffd.Mmap(uint64(pages) * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	u, err := uffd.Open()
	if err != nil {
		uffd.Munmap(mem)
		t.Fatal(err)
	}
	if err := u.Register(uffd.Addr(mem), uint64(len(mem))); err != nil {
		t.Fatal(err)
	}
	r := &region{mem: mem, u: u}
	t.Cleanup(func() { r.u.Close(); uffd.Munmap(r.mem) })
	return r
}

func serve(t testing.TB, p *Pager, r *region, img *image, spec Spec) *Session {
	t.Helper()
	f, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	spec.Base, spec.Length = uffd.Addr(r.mem), uint64(len(r.mem))
	s, err := p.Serve(r.u, f, spec)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	// The image stays open for the session's life: a restarted pager is
	// handed it again.
	t.Cleanup(func() { s.Close(); f.Close() })
	return s
}

// checkPage compares one page of the region with the expected content; the
// comparison is the first touch, so it is what faults the page in.
func checkPage(r *region, img *image, p int) error {
	got := r.mem[p*pageSize : (p+1)*pageSize]
	want := img.content[p*pageSize : (p+1)*pageSize]
	if !bytes.Equal(got, want) {
		return fmt.Errorf("page %d: content differs (got first bytes %x, want %x)", p, got[:8], want[:8])
	}
	return nil
}

func TestServeRegion(t *testing.T) {
	needUffd(t)
	p := startPager(t)
	const regionPages, dataPages = 64, 40
	holes := []int{3, 4, 17, 30}
	zeroPages := uint64(len(holes) + regionPages - dataPages)

	shuffled := rand.New(rand.NewPCG(1, 2)).Perm(regionPages)
	sequential := make([]int, regionPages)
	for i := range sequential {
		sequential[i] = i
	}
	for _, tc := range []struct {
		name      string
		order     []int
		readahead int
		tail      int
	}{
		{"shuffled one page per fault", shuffled, 0, 0},
		{"sequential one page per fault", sequential, 0, 0},
		{"image ends inside a page", shuffled, 0, 1000},
		{"sequential readahead 7", sequential, 7, 0},
		{"shuffled readahead 3", shuffled, 3, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := writeImage(t, t.TempDir(), 7, dataPages, regionPages, tc.tail, holes...)
			r := newRegion(t, regionPages)
			s := serve(t, p, r, img, Spec{Record: true, Readahead: tc.readahead})
			for _, pg := range tc.order {
				if err := checkPage(r, img, pg); err != nil {
					t.Fatal(err)
				}
			}
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			trace, err := s.Trace()
			if err != nil {
				t.Fatal(err)
			}
			if st.Errors != 0 {
				t.Errorf("Errors = %d", st.Errors)
			}
			if st.ZeroFaults != zeroPages {
				t.Errorf("ZeroFaults = %d, want %d (holes and pages past the image)", st.ZeroFaults, zeroPages)
			}
			if st.BytesRead > uint64(img.size) {
				t.Errorf("BytesRead = %d, more than the image (%d)", st.BytesRead, img.size)
			}
			if uint64(len(trace)) != st.Faults {
				t.Errorf("trace has %d pages, Faults = %d", len(trace), st.Faults)
			}
			// The shared page's counts are the pager's own.
			if c := s.Counts(); c.Faults != st.Faults || c.BytesRead != st.BytesRead || st.Faults == 0 {
				t.Errorf("Counts = %+v, pager's Stats say %d faults, %d bytes", c, st.Faults, st.BytesRead)
			}
			if tc.readahead == 0 {
				if st.Faults != regionPages {
					t.Errorf("Faults = %d, want %d (one per page)", st.Faults, regionPages)
				}
				if st.PagesInstalled != regionPages-zeroPages {
					t.Errorf("PagesInstalled = %d, want %d", st.PagesInstalled, regionPages-zeroPages)
				}
				if st.BytesRead != uint64(img.size)-uint64(len(holes))*pageSize {
					t.Errorf("BytesRead = %d, want the image's data (%d)", st.BytesRead, uint64(img.size)-uint64(len(holes))*pageSize)
				}
				for i, off := range trace {
					if off != uint64(tc.order[i])*pageSize {
						t.Fatalf("trace[%d] = page %d, want page %d (first-fault order)", i, off/pageSize, tc.order[i])
					}
				}
			} else {
				if st.Faults >= regionPages {
					t.Errorf("Faults = %d with readahead %d, want fewer than %d", st.Faults, tc.readahead, regionPages)
				}
				// The trace keeps touch order: a subsequence of it.
				pos := map[uint64]int{}
				for i, pg := range tc.order {
					pos[uint64(pg)*pageSize] = i
				}
				for i := 1; i < len(trace); i++ {
					if pos[trace[i]] <= pos[trace[i-1]] {
						t.Fatalf("trace out of touch order at %d: pages %d then %d", i, trace[i-1]/pageSize, trace[i]/pageSize)
					}
				}
			}
		})
	}
}

func TestTraceEmptyWithoutRecord(t *testing.T) {
	needUffd(t)
	p := startPager(t)
	img := writeImage(t, t.TempDir(), 1, 4, 4, 0)
	r := newRegion(t, 4)
	s := serve(t, p, r, img, Spec{})
	for pg := range 4 {
		if err := checkPage(r, img, pg); err != nil {
			t.Fatal(err)
		}
	}
	trace, err := s.Trace()
	if err != nil || len(trace) != 0 {
		t.Fatalf("Trace() = %d offsets, %v; want none without Record", len(trace), err)
	}
}

func TestServeRejectsBadSpec(t *testing.T) {
	needUffd(t)
	p := startPager(t)
	img := writeImage(t, t.TempDir(), 1, 1, 1, 0)
	r := newRegion(t, 2)
	f, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := uffd.Addr(r.mem)
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"unaligned base", Spec{Base: base + 1, Length: pageSize}},
		{"empty", Spec{Base: base}},
		{"unaligned length", Spec{Base: base, Length: 100}},
		{"negative readahead", Spec{Base: base, Length: pageSize, Readahead: -1}},
		{"readahead too large", Spec{Base: base, Length: pageSize, Readahead: MaxReadahead + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := p.Serve(r.u, f, tc.spec); !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("Serve = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestNoDeadlock runs many goroutines faulting concurrently on their own
// regions, in a subprocess with a deadline: at GOMAXPROCS=1 an in-process
// handler would hang; the pager process must not.
func TestNoDeadlock(t *testing.T) {
	needUffd(t)
	for _, tc := range []struct {
		name       string
		gomaxprocs string
	}{
		{"GOMAXPROCS=1", "1"},
		{"default GOMAXPROCS", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runSubprocess(t, "hammer", tc.gomaxprocs)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "hammer ok") {
				t.Fatalf("scenario did not report success:\n%s", out)
			}
		})
	}
}

// runSubprocess runs scenario in a copy of the test binary and fails, rather
// than hangs, if it takes longer than a generous deadline.
func runSubprocess(t *testing.T, scenario, gomaxprocs string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envScenario+"="+scenario)
	if gomaxprocs != "" {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+gomaxprocs)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("scenario %s did not finish within the deadline (deadlock?)", scenario)
	}
	return string(out), err
}

func runScenario(name string) int {
	switch name {
	case "hammer":
		if err := hammer(); err != nil {
			fmt.Fprintln(os.Stderr, "hammer:", err)
			return 1
		}
		fmt.Printf("hammer ok (GOMAXPROCS=%d)\n", runtime.GOMAXPROCS(0))
		return 0
	case "standby":
		if err := standbyScenario(); err != nil {
			fmt.Fprintln(os.Stderr, "standby:", err)
			return 1
		}
		fmt.Println("standby ok")
		return 0
	case "bothkilled":
		if err := bothKilledScenario(); err != nil {
			fmt.Fprintln(os.Stderr, "bothkilled:", err)
			return 1
		}
		fmt.Println("bothkilled ok")
		return 0
	case "orphan":
		p, err := Start(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("pager pid", p.Pid())
		return 0 // exit without Close: the pager must not outlive us
	}
	fmt.Fprintln(os.Stderr, "unknown scenario", name)
	return 2
}

// hammer: 8 goroutines, each with its own region and session, touch every
// page of their region in random order and check it.
func hammer() error {
	dir, err := os.MkdirTemp("", "thaw-pager-hammer")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := Start(context.Background())
	if err != nil {
		return err
	}
	defer p.Close()
	const workers, regionPages, dataPages = 8, 256, 200
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- hammerOne(p, dir, w, regionPages, dataPages)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func hammerOne(p *Pager, dir string, seed, regionPages, dataPages int) (err error) {
	st := &stubT{}
	defer st.cleanup()
	defer func() {
		if v := recover(); v != nil {
			f, ok := v.(stubFatal)
			if !ok {
				panic(v)
			}
			err = fmt.Errorf("worker %d: %s", seed, f)
		}
	}()
	img := writeImage(st, dir, seed, dataPages, regionPages, 0, seed, seed+50)
	r := newRegion(st, regionPages)
	s := serve(st, p, r, img, Spec{Record: true})
	for _, pg := range rand.New(rand.NewPCG(uint64(seed), 9)).Perm(regionPages) {
		if err := checkPage(r, img, pg); err != nil {
			return fmt.Errorf("worker %d: %w", seed, err)
		}
	}
	stats, err := s.Stats()
	if err != nil {
		return err
	}
	if stats.Faults != uint64(regionPages) {
		return fmt.Errorf("worker %d: %d faults, want %d", seed, stats.Faults, regionPages)
	}
	return nil
}

// stubT is a testing.TB for helpers run outside a test (in a scenario
// subprocess): Fatal panics with a stubFatal that hammerOne recovers.
type stubT struct {
	testing.TB
	cleanups []func()
}

type stubFatal string

func (s *stubT) Helper()           {}
func (s *stubT) Fatal(args ...any) { panic(stubFatal(fmt.Sprint(args...))) }
func (s *stubT) Fatalf(format string, args ...any) {
	panic(stubFatal(fmt.Sprintf(format, args...)))
}
func (s *stubT) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }
func (s *stubT) cleanup() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}

// TestCopyRacesFaults: the main process installs pages with uffd.Copy (REAP
// prefetch) while other goroutines fault on the same pages through the
// pager; both sides must tolerate EEXIST and every page must be right.
func TestCopyRacesFaults(t *testing.T) {
	needUffd(t)
	p := startPager(t)
	const pages = 512
	for round := range 3 {
		t.Run(strconv.Itoa(round), func(t *testing.T) {
			img := writeImage(t, t.TempDir(), round, pages, pages, 0)
			r := newRegion(t, pages)
			s := serve(t, p, r, img, Spec{})
			src, err := uffd.Mmap(pages * pageSize)
			if err != nil {
				t.Fatal(err)
			}
			defer uffd.Munmap(src)
			copy(src, img.content)

			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for g := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, pg := range rand.New(rand.NewPCG(uint64(round), uint64(g))).Perm(pages) {
						if err := checkPage(r, img, pg); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			var installed int64
			for off := 0; off < pages*pageSize; off += 16 * pageSize {
				n, err := r.u.Copy(uffd.Addr(r.mem)+uintptr(off), uffd.Addr(src)+uintptr(off), 16*pageSize)
				if err != nil {
					t.Fatalf("Copy at %d: %v", off, err)
				}
				installed += n
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for pg := range pages {
				if err := checkPage(r, img, pg); err != nil {
					t.Fatal(err)
				}
			}
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Errors != 0 {
				t.Errorf("pager errors: %d", st.Errors)
			}
			// Every page was installed exactly once, by one side or the
			// other (EEXIST pages are not counted by either).
			if got := uint64(installed/pageSize) + st.PagesInstalled; got != pages {
				t.Errorf("main installed %d pages + pager %d = %d, want %d", installed/pageSize, st.PagesInstalled, got, pages)
			}
			t.Logf("main installed %d pages, pager %d (faults %d)", installed/pageSize, st.PagesInstalled, st.Faults)
		})
	}
}

// TestPagerKilled: with the pager dead and not restarted, requests fail
// promptly with ErrUnavailable; a thread blocked on a fault stays blocked
// until the last copy of its userfaultfd closes, then reads a zero page (the
// kernel retries the fault as an ordinary anonymous fault) — not the image
// content.
func TestPagerKilled(t *testing.T) {
	needUffd(t)
	// A thread blocked on an unserved fault holds its P, and a GC phase
	// that needs every P would wait for it: freeze-proof the test.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := startPagerWith(t, false)
	p.mu.Lock()
	p.maxRestarts = 0
	p.mu.Unlock()
	img := writeImage(t, t.TempDir(), 3, 8, 8, 0)
	r := newRegion(t, 8)
	s := serve(t, p, r, img, Spec{})
	if err := checkPage(r, img, 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Done()

	if _, err := s.Stats(); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Stats after kill = %v, want ErrUnavailable", err)
	}
	if _, err := s.Trace(); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Trace after kill = %v, want ErrUnavailable", err)
	}
	f, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := p.Serve(r.u, f, Spec{Base: uffd.Addr(r.mem), Length: uint64(len(r.mem))}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Serve after kill = %v, want ErrUnavailable", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Session.Close after kill = %v, want nil (nothing left to drop)", err)
	}

	// A thread faulting now blocks: nobody reads the uffd.
	got := make(chan []byte)
	go func() {
		got <- bytes.Clone(r.mem[pageSize : 2*pageSize])
	}()
	blocked := waitBlockedInUserfault(t)
	t.Logf("thread seen blocked in handle_userfault: %v", blocked)
	r.u.Close() // last copy: the kernel releases the uffd and wakes waiters
	page := <-got
	if !bytes.Equal(page, make([]byte, pageSize)) {
		t.Fatalf("after the uffd closed, a blocked reader saw non-zero bytes %x", page[:8])
	}
	if bytes.Equal(page, img.content[pageSize:2*pageSize]) {
		t.Fatal("reader saw the image content, which nobody served")
	}
}

// TestPagerRestarts: without a standby, a killed pager is replaced by the
// client; live sessions are served by the new one, including a thread that
// faulted while no pager was running.
func TestPagerRestarts(t *testing.T) {
	needUffd(t)
	// While no pager runs, a GC phase that needs every P would wait
	// forever for the blocked thread's P, and the restart could never run
	// (see docs/pager.md). Keep the collector out of this window.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := startPagerWith(t, false)
	const pages = 16
	img := writeImage(t, t.TempDir(), 4, pages, pages, 0, 5)
	r := newRegion(t, pages)
	s := serve(t, p, r, img, Spec{Record: true})
	if err := checkPage(r, img, 0); err != nil {
		t.Fatal(err)
	}
	// Freeze the pager, fault, and kill it once the thread is seen
	// blocked: the new pager must serve a fault queued before it existed.
	oldPid := p.Pid()
	testproc.Stop(t, oldPid)
	result := make(chan error, 1)
	go func() {
		for pg := 1; pg < pages; pg++ {
			if err := checkPage(r, img, pg); err != nil {
				result <- err
				return
			}
		}
		result <- nil
	}()
	t.Logf("thread seen blocked in handle_userfault before the kill: %v", waitBlockedInUserfault(t))
	if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		r.u.Close() // unblock the reader (zero pages) before unmapping
		<-result
		t.Fatal("faults not served 30 s after the pager was killed")
	}
	if p.Pid() == oldPid {
		t.Fatal("pager pid unchanged after a restart")
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed after a single restart")
	default:
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Faults == 0 || st.Faults > pages-1 {
		t.Errorf("Faults after restart = %d, want 1..%d", st.Faults, pages-1)
	}
	if _, err := s.Trace(); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Trace after a restart = %v, want ErrUnavailable (recording lost)", err)
	}
	// A new session on the restarted pager works too.
	r2 := newRegion(t, pages)
	serve(t, p, r2, img, Spec{})
	for pg := range pages {
		if err := checkPage(r2, img, pg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStandbyTakesOver: the primary is frozen while a thread faults, a GC
// is started (it waits for the faulting thread's P, freezing this process),
// and the primary is killed from outside. Only the standby can unfreeze
// the process. Run in a subprocess so a failure is a deadline, not a hang.
func TestStandbyTakesOver(t *testing.T) {
	needUffd(t)
	out, err := runSubprocess(t, "standby", "")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "standby ok") {
		t.Fatalf("scenario did not report success:\n%s", out)
	}
	t.Log(strings.TrimSpace(out))
}

// serveFresh serves img on a new region of pages pages and checks every
// page arrives.
func serveFresh(st *stubT, p *Pager, img *image, pages int) error {
	r := newRegion(st, pages)
	serve(st, p, r, img, Spec{})
	for pg := range pages {
		if err := checkPage(r, img, pg); err != nil {
			return err
		}
	}
	return nil
}

// withStandby runs a scenario's body with a started Pager that has a
// standby, a temporary directory, and a stub testing.TB whose Fatal
// becomes the returned error.
func withStandby(body func(st *stubT, dir string, p *Pager) error) (err error) {
	st := &stubT{}
	defer st.cleanup()
	defer func() {
		if v := recover(); v != nil {
			f, ok := v.(stubFatal)
			if !ok {
				panic(v)
			}
			err = errors.New(string(f))
		}
	}()
	dir, err := os.MkdirTemp("", "thaw-pager-scenario")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := Start(context.Background())
	if err != nil {
		return err
	}
	defer p.Close()
	p.mu.Lock()
	sb := p.standby
	p.mu.Unlock()
	if sb == nil {
		return errors.New("no standby started")
	}
	return body(st, dir, p)
}

func standbyScenario() error { return withStandby(standbyBody) }

func standbyBody(st *stubT, dir string, p *Pager) error {
	const pages = 16
	img := writeImage(st, dir, 5, pages, pages, 0, 3)
	r := newRegion(st, pages)
	serve(st, p, r, img, Spec{})
	primary := p.Pid()
	testproc.Stop(st, primary)
	// The killer is another process, so it works while this one is
	// frozen: the shell sleeps, then kills the frozen primary.
	killer := exec.Command("sh", "-c", fmt.Sprintf("sleep 0.5; kill -KILL %d", primary))
	if err := killer.Start(); err != nil {
		return err
	}
	result := make(chan error, 1)
	go func() {
		for pg := range pages {
			if err := checkPage(r, img, pg); err != nil {
				result <- err
				return
			}
		}
		result <- nil
	}()
	runtime.GC() // needs every P, including the blocked thread's
	if err := <-result; err != nil {
		return err
	}
	_ = killer.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for p.Pid() == primary {
		if time.Now().After(deadline) {
			return errors.New("client did not switch to the standby")
		}
		time.Sleep(time.Millisecond)
	}
	// A new standby appears, and new sessions work.
	for {
		p.mu.Lock()
		sb := p.standby
		p.mu.Unlock()
		if sb != nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("no new standby")
		}
		time.Sleep(time.Millisecond)
	}
	if err := serveFresh(st, p, img, pages); err != nil {
		return err
	}
	fmt.Printf("primary %d killed while frozen; standby %d took over\n", primary, p.Pid())
	return nil
}

// TestPagerGivesUp: a pager that keeps dying is restarted a bounded number
// of times, then Done is closed.
func TestPagerGivesUp(t *testing.T) {
	needUffd(t)
	p := startPager(t)
	for i := 0; ; i++ {
		pid := p.Pid()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for p.Pid() == pid {
			select {
			case <-p.Done():
				if i != defaultMaxRestarts {
					t.Fatalf("gave up after %d restarts, want %d", i, defaultMaxRestarts)
				}
				if _, err := p.request(header{op: opStats, session: 1}, nil, nil); !errors.Is(err, errdefs.ErrUnavailable) {
					t.Fatalf("request after giving up = %v, want ErrUnavailable", err)
				}
				return
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("pager neither restarted nor gave up")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// waitBlockedInUserfault reports whether a thread of this process is seen
// sleeping in handle_userfault within a few seconds (diagnostic only).
func waitBlockedInUserfault(t *testing.T) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob("/proc/self/task/*/wchan")
		for _, w := range tasks {
			if b, err := os.ReadFile(w); err == nil && strings.Contains(string(b), "userfault") {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// TestPagerDiesWithParent: a process that starts a pager and exits without
// closing it must not leave the pager running.
func TestPagerDiesWithParent(t *testing.T) {
	needUffd(t)
	out, err := runSubprocess(t, "orphan", "")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var pid int
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(line, "pager pid "); ok {
			pid, _ = strconv.Atoi(strings.TrimSpace(s))
		}
	}
	if pid == 0 {
		t.Fatalf("no pager pid in output:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// Gone, or a zombie waiting for init to reap it.
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("pager %d still running after its parent exited", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartContextCanceled(t *testing.T) {
	needUffd(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := Start(ctx)
	if err == nil {
		// The pager may have been ready before the check; that is fine.
		p.Close()
		return
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a canceled context = %v", err)
	}
}

// A page that fails its checksum is refused (served as zeros) and counted
// in the page the session shares with the client before the faulting
// thread is woken, so Errors sees it as soon as the access returns.
func TestSessionErrorsShared(t *testing.T) {
	needUffd(t)
	p := startPager(t)
	const pages = 8
	img := writeImage(t, t.TempDir(), 9, pages, pages, 0)
	crcs := make([]byte, 4*pages)
	for i := range pages {
		binary.LittleEndian.PutUint32(crcs[4*i:], crc32.Checksum(img.content[i*pageSize:(i+1)*pageSize], crc32.MakeTable(crc32.Castagnoli)))
	}
	binary.LittleEndian.PutUint32(crcs[4*5:], 0xdeadbeef) // page 5's checksum no longer matches
	crcPath := filepath.Join(t.TempDir(), "pages.crc")
	if err := os.WriteFile(crcPath, crcs, 0o600); err != nil {
		t.Fatal(err)
	}
	imgF, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	defer imgF.Close()
	crcF, err := os.Open(crcPath)
	if err != nil {
		t.Fatal(err)
	}
	defer crcF.Close()
	r := newRegion(t, pages)
	s, err := p.ServeSource(r.u, SourceSpec{Kind: KindFile, Files: []*os.File{imgF, crcF}}, Spec{Base: uffd.Addr(r.mem), Length: uint64(len(r.mem))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The counter page is present before anyone reads it: its first touch
	// would be a page fault on a restore's start (mapShared).
	var entry [8]byte // the page's /proc/self/pagemap entry, read without touching it
	if err := engine.ReadPagemap(uintptr(unsafe.Pointer(&s.shared[0])), entry[:]); err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint64(entry[:])&engine.PagemapPresent == 0 {
		t.Fatal("shared counter page not mapped in the client before its first read")
	}
	if err := checkPage(r, img, 4); err != nil || s.Errors() != 0 {
		t.Fatalf("good page: %v, errors %d", err, s.Errors())
	}
	if got := r.mem[5*pageSize : 6*pageSize]; !bytes.Equal(got, make([]byte, pageSize)) {
		t.Fatal("a page failing its checksum was installed")
	}
	if n := s.Errors(); n != 1 {
		t.Fatalf("Errors = %d right after the refused access, want 1", n)
	}
	if st, err := s.Stats(); err != nil || st.Errors != 1 {
		t.Fatalf("Stats.Errors = %d (%v), want 1", st.Errors, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := s.Errors(); n != 0 {
		t.Fatalf("Errors after Close = %d, want 0", n)
	}
}
