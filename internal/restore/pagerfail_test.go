package restore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// A data page of memory.img punched into a hole reads as zeros, and the
// file system reports it as a hole. The pager must not take the hole's word
// for it: the page's recorded checksum is not a zero page's, so a lazy
// restore refuses the page like any other checksum failure. Several
// restores fault at once, more than GOMAXPROCS, with GCs running.
func TestLazyPunchedHoleIsBad(t *testing.T) {
	const punched = 37
	snap := mmapSnapshot(t)
	f, err := os.OpenFile(snap.Path(snapshot.ImageFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, punched*snapshot.PageSize, snapshot.PageSize); err != nil {
		f.Close()
		t.Skipf("file system cannot punch holes: %v", err)
	}
	f.Close()
	p, err := pager.Start(context.Background())
	if err != nil {
		t.Skipf("no pager: %v", err)
	}
	defer p.Close()
	r := &Restorer{Pager: p}

	n := 2*runtime.GOMAXPROCS(0) + 1
	done := make(chan error, n)
	for range n {
		go func() {
			m, err := r.Prepare(context.Background(), Lazy, Files(snap), 32<<20, false)
			if err != nil {
				done <- err
				return
			}
			defer m.Region.Free()
			mem := m.Region.Bytes()
			// Touch the punched page and its neighbour (the sum keeps the
			// reads; a shared sink would race between goroutines).
			if mem[punched*snapshot.PageSize+100]+mem[(punched+1)*snapshot.PageSize] == 1 {
				runtime.Gosched()
			}
			bad, err := m.Verify()
			if err == nil && (bad != 1 || m.Failures().Corrupt != 1) {
				err = fmt.Errorf("Verify = %d bad pages, failures %+v; want the punched page refused", bad, m.Failures())
			}
			done <- err
		}()
	}
	waitAll(t, done, n)
}

// A data page past the end of a truncated image is refused by the lazy
// pager like a page that fails its checksum; before, a short read left it
// unchecked.
func TestLazyTruncatedImageIsBad(t *testing.T) {
	const cut = 37
	snap := mmapSnapshot(t)
	if err := os.Truncate(snap.Path(snapshot.ImageFile), cut*snapshot.PageSize); err != nil {
		t.Fatal(err)
	}
	p, err := pager.Start(context.Background())
	if err != nil {
		t.Skipf("no pager: %v", err)
	}
	defer p.Close()
	r := &Restorer{Pager: p}
	m, err := r.Prepare(context.Background(), Lazy, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	if m.Region.Bytes()[cut*snapshot.PageSize+100] == 1 {
		runtime.Gosched()
	}
	if bad, err := m.Verify(); err != nil || bad < 1 || m.Failures().Corrupt < 1 {
		t.Fatalf("Verify = %d bad pages, %v, failures %+v; want the page past the cut refused", bad, err, m.Failures())
	}
}

// A lazy restore from the store whose image chunks are gone (freed by
// `thaw store gc`, or a remote that lost them) answers every fault within
// the fault budget with a zero page, counted as unavailable, instead of
// leaving the faulting thread blocked. Before, the thread slept in the
// kernel holding its P and the next GC froze the process. More restores
// fault at once than there are Ps, and GCs run meanwhile.
func TestStoreLazyChunksGone(t *testing.T) {
	f := helloFixture(t)
	cfg := dirConfig(t)
	cfg.CacheDir = ""
	_, sn := publish(t, f, cfg)
	deleteChunks(t, cfg, sn, snapshot.ImageFile)
	r, src := &Restorer{Pager: f.pager}, (&Store{Config: cfg}).Snapshot(sn)
	n := 2*runtime.GOMAXPROCS(0) + 1
	done := make(chan error, n)
	for range n {
		go func() {
			ctx := context.Background()
			m, err := r.Prepare(ctx, Lazy, src, instCfg.MemoryLimit, false)
			if err != nil {
				done <- err
				return
			}
			// The guest runs on zero pages: its restore hook or its call
			// may trap; either way the pages must be reported.
			inst, err := f.mod.Restore(ctx, instCfg, &sn.Meta.State, m.Region)
			if err == nil {
				_, _ = inst.Invoke(ctx, get("/x", "name=thaw"))
				defer inst.Close(ctx)
			}
			bad, err := m.Verify()
			if err == nil && (bad == 0 || m.Failures().Unavailable == 0) {
				err = fmt.Errorf("Verify = %d bad pages, failures %+v; want the missing pages refused as unavailable", bad, m.Failures())
			}
			done <- err
		}()
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				runtime.GC()
			}
		}
	}()
	waitAll(t, done, n)
}

// deleteChunks removes the store objects of file's non-zero chunks.
func deleteChunks(t *testing.T, cfg stack.Config, sn *storesnap.Snapshot, file string) {
	t.Helper()
	n := 0
	for _, fe := range sn.Snap.Manifest().Files {
		if fe.Name != file {
			continue
		}
		for _, c := range fe.Chunks {
			if c.Zero {
				continue
			}
			matches, _ := filepath.Glob(filepath.Join(cfg.Dir, "objects", "*", "*"+c.ID.String()))
			for _, path := range matches {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("found no chunk to delete")
	}
}

// waitAll waits for n results. A fault left unanswered never completes;
// the generous bound turns that hang into a failure.
func waitAll(t *testing.T, done chan error, n int) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for range n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("restores did not finish: a fault was left unanswered")
		}
	}
}
