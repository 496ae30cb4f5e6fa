package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/storesnap"
	"github.com/thaw-run/thaw/internal/uffd"
)

// StoreRestorer prepares memory from snapshots that live only in the chunk
// store (internal/store), in every mode:
//
//	eager  every non-zero chunk of memory.img is fetched in parallel and
//	       read straight into place
//	mmap   the store has no file to map: the image is first materialised
//	       into a sparse file under CacheDir (once per snapshot; later
//	       restores reuse it) and that file is mapped
//	lazy   the pager child opens the store itself (Config) and serves each
//	       fault from the chunk holding the page
//	reap   ws.img's chunks are fetched in parallel, then installed with one
//	       UFFDIO_COPY per run; other pages are lazy, from the store
//	bulk   ws.img's chunks are fetched in parallel and each is copied
//	       straight into its pages' places before userfaultfd is
//	       registered; other pages are lazy, from the store
//
// Every chunk is authenticated by the store before any byte of it reaches
// the region, so a tampered chunk fails the restore with errdefs.ErrCorrupt
// (counted by CorruptRestores) and the caller falls back to a cold start.
// In lazy paging a tampered or unavailable chunk is detected by the pager,
// which serves a zero page instead of installing it (counted in the
// session's Errors and Failures); the owner must discard that instance.
type StoreRestorer struct {
	// Pager serves lazy pages (lazy, reap, bulk).
	Pager *pager.Pager
	// Config names the store the snapshots come from; the pager child
	// opens it from this description (stack.OpenReader).
	Config stack.Config
	// CacheDir holds images materialised for mmap restores.
	CacheDir string
	// Concurrency bounds parallel chunk fetches (default 8).
	Concurrency int
	// Readahead is passed to the pager (pages installed after each
	// faulting one).
	Readahead int

	corrupt atomic.Int64
	live    atomic.Pointer[pager.Pager] // replaces Pager once set (SetPager)
}

// SetPager makes later restores use p instead of Pager (see
// Restorer.SetPager).
func (r *StoreRestorer) SetPager(p *pager.Pager) { r.live.Store(p) }

func (r *StoreRestorer) pager() *pager.Pager {
	if p := r.live.Load(); p != nil {
		return p
	}
	return r.Pager
}

// CorruptRestores counts restores that failed because stored data failed
// authentication.
func (r *StoreRestorer) CorruptRestores() int64 { return r.corrupt.Load() }

func (r *StoreRestorer) concurrency() int {
	if r.Concurrency > 0 {
		return r.Concurrency
	}
	return 8
}

// Prepare builds the memory of a new instance of snap in mode, in a region
// of limit bytes, reading only from the store. With record set (lazy, reap
// and bulk) the pager records the order of first faults, i.e. of the pages
// not installed ahead, which tells what the pager fetched.
func (r *StoreRestorer) Prepare(ctx context.Context, mode Mode, snap *storesnap.Snapshot, limit uint64, record bool) (*Memory, error) {
	// Store restores take new regions: their fills place chunks as they
	// arrive and have not been taught to scrub a reused one.
	region, err := engine.NewRegion(limit)
	if err != nil {
		return nil, fmt.Errorf("%s restore of store snapshot %s: %w", mode, snap.ID, err)
	}
	m, err := prepare(mode, snap.Meta.ImageSize, region, record, func(m *Memory) error {
		switch mode {
		case Eager:
			return r.eager(ctx, m, snap)
		case Mmap:
			return r.mmap(ctx, m, snap)
		case Lazy:
			return r.lazy(ctx, m, snap, false, false, record)
		case Reap, Bulk:
			if snap.WS == nil {
				return fmt.Errorf("no working set recorded: %w", errdefs.ErrNotFound)
			}
			return r.lazy(ctx, m, snap, true, mode == Bulk, record)
		}
		return fmt.Errorf("mode %q does not restore from a snapshot: %w", mode, errdefs.ErrInvalid)
	})
	if err != nil {
		if errors.Is(err, errdefs.ErrCorrupt) {
			r.corrupt.Add(1)
		}
		return nil, fmt.Errorf("%s restore of store snapshot %s: %w", mode, snap.ID, err)
	}
	return m, nil
}

// readInto reads [off, off+len(p)) of f; bytes past its end stay as they are.
func readInto(ctx context.Context, f interface {
	ReadAtContext(context.Context, []byte, int64) (int, error)
}, p []byte, off int64) (int, error) {
	n, err := f.ReadAtContext(ctx, p, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (r *StoreRestorer) eager(ctx context.Context, m *Memory, snap *storesnap.Snapshot) error {
	mem := m.Region.Bytes()[:snap.Meta.ImageSize]
	var read atomic.Int64
	err := snap.Snap.ForEachChunk(ctx, snapshot.ImageFile, r.concurrency(), func(ctx context.Context, off, size int64) error {
		m.Region.Populate(uint64(off), uint64(size))
		n, err := readInto(ctx, snap.Image, mem[off:off+size], off)
		read.Add(int64(n))
		return err
	})
	m.stats.BytesRead = read.Load()
	return err
}

// mmap maps an image materialised from the store's authenticated chunks.
// Once on local disk the file is no more trustworthy than a local snapshot
// (anyone who can write the cache directory can change it, and a reused
// file is only checked for its size), so it is verified as a local image
// is: the pages the guest maps are checked against the snapshot's page
// checksums after every call (Memory.Verify). A bad page also removes the
// file, so the next mmap restore materialises it afresh.
func (r *StoreRestorer) mmap(ctx context.Context, m *Memory, snap *storesnap.Snapshot) error {
	if r.CacheDir == "" {
		return fmt.Errorf("mmap from the store needs a cache directory to materialise the image in: %w", errdefs.ErrInvalid)
	}
	// Without pagemap the pages could not be verified: refuse, and the
	// caller boots cold, rather than run on unchecked memory.
	if err := pagemap(); err != nil {
		return err
	}
	checked, err := snap.Checked(ctx, r.CacheDir)
	if err != nil {
		return err
	}
	path, written, err := snap.Materialise(ctx, r.CacheDir, r.concurrency())
	m.stats.BytesRead = written
	if err != nil {
		return err
	}
	m.Region.NoReuse()
	if snap.Meta.ImageSize == 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open materialised image: %w", err)
	}
	m.image = f // kept open to re-read pages the guest has copied
	mem := m.Region.Bytes()[:snap.Meta.ImageSize]
	_, err = unix.MmapPtr(int(f.Fd()), 0, unsafe.Pointer(&mem[0]), uintptr(len(mem)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		return fmt.Errorf("map image: %w", err)
	}
	_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE) // as Restorer.mmap explains
	m.check = newMapCheck(checked, f, mem)
	m.onBad = func() { _ = os.Remove(path) }
	m.check.startAhead()
	return nil
}

// lazy registers the region with userfaultfd, optionally installs the
// working set first (ws; bulk: before registering), and hands the rest to
// the pager's store source.
func (r *StoreRestorer) lazy(ctx context.Context, m *Memory, snap *storesnap.Snapshot, ws, bulk, record bool) error {
	pg := r.pager()
	if pg == nil {
		return fmt.Errorf("no pager process: %w", errdefs.ErrUnavailable)
	}
	size := uint64(snap.Meta.ImageSize)
	if size == 0 {
		return nil
	}
	if ws && bulk {
		if err := r.bulkFill(ctx, m, snap); err != nil {
			return err
		}
	}
	u, err := uffd.Open()
	if err != nil {
		return fmt.Errorf("userfaultfd: %v: %w", err, errdefs.ErrUnavailable)
	}
	m.uffd = u
	if err := u.Register(m.Region.Addr(), size); err != nil {
		return fmt.Errorf("register region: %w", err)
	}
	if ws && !bulk {
		if err := r.reapFill(ctx, m, snap); err != nil {
			return err
		}
	}
	src, err := pager.StoreSource(pager.StoreParams{Store: r.Config.JSON(), Snapshot: snap.ID, File: snapshot.ImageFile})
	if err != nil {
		return err
	}
	sess, err := pg.ServeSource(u, src, pager.Spec{Base: m.Region.Addr(), Length: size, Record: record, Readahead: r.Readahead})
	if err != nil {
		return fmt.Errorf("pager: %w", err)
	}
	m.session = sess
	return nil
}

// reapFill fetches ws.img's chunks in parallel and installs each chunk's
// pages with UFFDIO_COPY straight from the authenticated plaintext as soon
// as that chunk has arrived, so installing overlaps fetching the rest and no
// staging buffer is needed.
func (r *StoreRestorer) reapFill(ctx context.Context, m *Memory, snap *storesnap.Snapshot) error {
	base := m.Region.Addr()
	return r.fillWS(ctx, m, snap, func(plain []byte, dst, lo, hi int64) error {
		if _, err := m.uffd.Copy(base+uintptr(dst), uintptr(unsafe.Pointer(&plain[lo])), uint64(hi-lo)); err != nil {
			return fmt.Errorf("install working set: %w", err)
		}
		return nil
	})
}

// bulkFill fetches ws.img's chunks in parallel and copies each straight into
// the places of the pages it holds as soon as it has arrived.
func (r *StoreRestorer) bulkFill(ctx context.Context, m *Memory, snap *storesnap.Snapshot) error {
	mem := m.Region.Bytes()
	return r.fillWS(ctx, m, snap, func(plain []byte, dst, lo, hi int64) error {
		m.Region.Populate(uint64(dst), uint64(hi-lo))
		copy(mem[dst:dst+hi-lo], plain[lo:hi])
		return nil
	})
}

// fillWS fetches every non-zero chunk of ws.img, Concurrency at a time, and
// calls place for each piece of a working-set run the chunk holds: plain is
// the chunk's plaintext (authenticated), [lo, hi) the piece's range within
// it and dst the piece's offset in the image. A zero chunk's pages are left
// to the pager (which serves them as zeros).
func (r *StoreRestorer) fillWS(ctx context.Context, m *Memory, snap *storesnap.Snapshot, place func(plain []byte, dst, lo, hi int64) error) error {
	t0 := time.Now()
	ws := snap.WS
	starts := runStarts(ws)
	var read atomic.Int64
	err := snap.Snap.ForEachChunk(ctx, snapshot.WSImageFile, r.concurrency(), func(ctx context.Context, off, size int64) error {
		plain, err := snap.WSImage.Chunk(ctx, off)
		if err != nil {
			return err
		}
		if int64(len(plain)) != size {
			return fmt.Errorf("working-set chunk at %d: %d bytes, want %d: %w", off, len(plain), size, errdefs.ErrCorrupt)
		}
		read.Add(size)
		return wsSegments(ws, starts, off, off+size, func(dst, lo, hi int64) error {
			return place(plain, dst, lo-off, hi-off)
		})
	})
	m.stats.BytesRead += read.Load()
	if err != nil {
		return err
	}
	m.stats.Prefetch = time.Since(t0)
	m.stats.WSBytes, m.stats.WSPages = ws.Bytes(), ws.Pages
	return nil
}

// wsSegments calls fn for each piece of a working-set run that lies in
// [off, end) of ws.img: the piece's offset in the image (dst) and its range
// [lo, hi) in ws.img. Chunk boundaries are page-aligned, so every piece is
// whole pages.
func wsSegments(ws *snapshot.WorkingSet, starts []int64, off, end int64, fn func(dst, lo, hi int64) error) error {
	i := max(sort.Search(len(starts), func(i int) bool { return starts[i] > off })-1, 0)
	for ; i < len(ws.Runs) && starts[i] < end; i++ {
		run := ws.Runs[i]
		lo, hi := max(starts[i], off), min(starts[i]+int64(run.Count)*snapshot.PageSize, end)
		if lo >= hi {
			continue
		}
		if err := fn(int64(run.Start)*snapshot.PageSize+(lo-starts[i]), lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// runStarts returns each run's offset in ws.img.
func runStarts(ws *snapshot.WorkingSet) []int64 {
	starts := make([]int64, len(ws.Runs))
	var pos int64
	for i, run := range ws.Runs {
		starts[i] = pos
		pos += int64(run.Count) * snapshot.PageSize
	}
	return starts
}
