package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/faultguard"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/timeline"
	"github.com/thaw-run/thaw/internal/uffd"
)

// eager reads every data extent of the image into place, up to the
// source's fetchers at once, and has the source check the whole image.
func (r *Restorer) eager(ctx context.Context, m *Memory, src Source) error {
	size := src.Meta().ImageSize
	img, err := src.openImage(ctx)
	if err != nil {
		return err
	}
	defer img.close()
	mem := m.Region.Bytes()[:size]
	extents := img.extents()
	// Every data page is read in whole below; any other page a reused
	// region still has mapped is a hole of the image: clear it.
	data := make([]bool, len(mem)/snapshot.PageSize+1)
	for _, e := range extents {
		for p := e.Off / snapshot.PageSize; p < (e.End()+snapshot.PageSize-1)/snapshot.PageSize; p++ {
			data[p] = true
		}
	}
	keep := func(p int) bool { return p < len(data) && data[p] }
	allZero := func(int) bool { return true }
	if m.Region.Reused() {
		if err := m.scrub(size, keep, allZero); err != nil {
			return err
		}
	}
	var read atomic.Int64
	readExtent := func(ctx context.Context, e snapshot.Extent) (err error) {
		defer catch(&err)
		if err := ctx.Err(); err != nil {
			return err
		}
		m.Region.Populate(uint64(e.Off), uint64(e.Len))
		n, err := img.readAt(ctx, mem[e.Off:e.End()], e.Off)
		read.Add(int64(n))
		if err != nil {
			return fmt.Errorf("read image: %w", err)
		}
		return nil
	}
	if img.fetchers() <= 1 {
		// One sequential stream (local files): read in this goroutine,
		// without a goroutine and a hand-off per extent.
		for _, e := range extents {
			if err = readExtent(ctx, e); err != nil {
				break
			}
		}
	} else {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(img.fetchers())
		for _, e := range extents {
			g.Go(func() error { return readExtent(gctx, e) })
		}
		err = g.Wait()
	}
	m.stats.BytesRead = read.Load()
	if err != nil {
		return err
	}
	if err := img.check(mem); err != nil {
		return err
	}
	m.prescrub = func() { m.Region.Prescrub(uint64(size), keep, allZero) }
	return nil
}

// mmap maps the source's image file privately over the region: pages come
// from the page cache (or disk) on first touch, and writes copy them.
// Nothing checks them on the way in; Memory.Verify checks the mapped pages
// after each call.
func (r *Restorer) mmap(ctx context.Context, m *Memory, src Source) error {
	// Without pagemap the pages could not be verified: refuse, and the
	// caller boots cold, rather than run on unchecked memory.
	if err := pagemap(); err != nil {
		return err
	}
	mf, err := src.mapFile(ctx)
	m.stats.BytesRead = mf.written
	if err != nil {
		return err
	}
	f, err := os.Open(mf.path)
	if err != nil {
		return fmt.Errorf("open image: %v: %w", err, errdefs.ErrCorrupt)
	}
	m.image = f // kept open to re-read pages the guest has copied
	m.Region.NoReuse()
	size := src.Meta().ImageSize
	if size == 0 {
		return nil
	}
	// A page of the mapping past the file's end faults with SIGBUS: refuse
	// a file that is already short, and guard the mapping against one that
	// shrinks later (something outside thaw truncating it; thaw replaces
	// images by rename).
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat image: %v: %w", err, errdefs.ErrCorrupt)
	}
	if fi.Size() != size {
		return fmt.Errorf("image file is %d bytes, not the snapshot's %d: %w", fi.Size(), size, errdefs.ErrCorrupt)
	}
	mem := m.Region.Bytes()[:size]
	_, err = unix.MmapPtr(int(f.Fd()), 0, unsafe.Pointer(&mem[0]), uintptr(len(mem)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		return fmt.Errorf("map image: %w", err)
	}
	if m.holes, err = faultguard.GuardMapping(uintptr(unsafe.Pointer(&mem[0])), uint64(len(mem))); err != nil {
		return err
	}
	// The new mapping does not inherit the region's MADV_NOHUGEPAGE. Without
	// it the kernel maps large page-cache folios of the image with one PMD,
	// and the guest's first write into one splits it by unmapping all 512
	// pages, including ones the guest has read: Verify would no longer see
	// them. (EINVAL only on kernels without THP, where this cannot happen.)
	_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	m.check = newMapCheck(mf.check, f, mem)
	m.onBad = mf.onBad
	m.check.startAhead()
	return nil
}

// lazy registers the region with userfaultfd, optionally installs a
// working set first (ws; bulk: before registering, reap: after), and hands
// the rest to the pager, which serves each fault from the source.
//
// The pager takes the descriptor while the working set is read: it needs
// no registration to. Bulk fills the working set before registering, so
// its pages are present at registration and never fault: they cost
// neither a round trip nor a UFFDIO_COPY. Reap installs with UFFDIO_COPY,
// which needs the range registered. Bulk leaves its fill, the registration
// and the wait for the pager in m.later, for Restorer.Start's ready; with a
// session opened ahead (ahead.go) there is no pager to wait for.
func (r *Restorer) lazy(ctx context.Context, m *Memory, src Source, ws *snapshot.WorkingSet, bulk, record bool) error {
	pg := r.pager()
	if pg == nil {
		return fmt.Errorf("no pager process: %w", errdefs.ErrUnavailable)
	}
	size := uint64(src.Meta().ImageSize)
	if size == 0 {
		return nil
	}
	spec := pager.Spec{Base: m.Region.Addr(), Length: size, Record: record, Readahead: r.Readahead}
	// fill is bulk's read of the working set and registration, which runs
	// later (Restorer.Start), with the pager's hand-off if there is one
	// (attached). The next bulk restore of this snapshot in this region
	// then gets a session opened when this one is done (ahead.go).
	fill := func(attached <-chan error) func() error {
		return func() error {
			err := r.bulk(ctx, m, src, ws)
			if err == nil && m.uffdLen == 0 {
				err = m.register(size)
			}
			if attached != nil {
				err = errors.Join(<-attached, err)
			}
			if err == nil && m.Region.Pooled() {
				m.next = &ahead{pager: pg, id: src.String(), local: src.Local() != nil, spec: spec, src: m.pagerSrc}
			}
			return err
		}
	}
	if bulk && r.take(m, pg, src, spec) {
		m.later = fill(nil)
		return nil
	}
	srcSpec, err := src.pagerSource(m)
	if err != nil {
		return err
	}
	m.pagerSrc = srcSpec
	u, err := uffd.Open()
	if err != nil {
		return fmt.Errorf("userfaultfd: %v: %w", err, errdefs.ErrUnavailable)
	}
	m.uffd = u
	attached := make(chan error, 1)
	go func() {
		attached <- r.attach(pg, m, srcSpec, spec)
	}()
	switch {
	case ws == nil:
		err = m.register(size)
	case bulk:
		m.later = fill(attached)
		return nil
	default:
		if err = m.register(size); err == nil {
			err = r.reap(ctx, m, src, ws)
		}
	}
	return errors.Join(<-attached, err)
}

// attach hands the memory's userfaultfd to the pager, which serves the
// faults of whatever range is registered with it from src.
func (r *Restorer) attach(pg *pager.Pager, m *Memory, src pager.SourceSpec, spec pager.Spec) error {
	sess, err := pg.ServeSource(m.uffd, src, spec)
	if err != nil {
		return fmt.Errorf("pager: %w", err)
	}
	m.mu.Lock()
	m.session = sess
	m.mu.Unlock()
	return nil
}

// reap is REAP's install step: each piece of the working set the source
// hands over goes in with one UFFDIO_COPY.
func (r *Restorer) reap(ctx context.Context, m *Memory, src Source, ws *snapshot.WorkingSet) error {
	t0 := time.Now()
	base := m.Region.Addr()
	read, err := src.eachWS(ctx, r, ws, func(dst int64, data []byte) error {
		if len(data) == 0 {
			return nil
		}
		if _, err := m.uffd.Copy(base+uintptr(dst), uintptr(unsafe.Pointer(&data[0])), uint64(len(data))); err != nil {
			return fmt.Errorf("install working set: %w", err)
		}
		return nil
	})
	m.stats.BytesRead += read
	if err != nil {
		return err
	}
	m.prefetched(ws, t0)
	return nil
}

// bulk has the source read the working set straight into place, after
// scrubbing a reused region so that every page outside the working set is
// missing, for the pager to serve.
func (r *Restorer) bulk(ctx context.Context, m *Memory, src Source, ws *snapshot.WorkingSet) error {
	t0 := time.Now()
	size := src.Meta().ImageSize
	in := pageSet(ws.Runs)
	// mapped[p]: working-set page p is still mapped in a reused region and
	// is overwritten in place; other pages are populated first.
	var mapped []bool
	if m.Region.Reused() {
		mapped = make([]bool, size/snapshot.PageSize) // working-set pages lie in the image
		keep := func(p int) bool {
			if in(p) {
				mapped[p] = true
				return true
			}
			return false
		}
		if err := m.scrub(size, keep, nil); err != nil {
			return err
		}
		// With every working-set page mapped, no write of the fill can
		// fault: register the range now, while the disk works, instead
		// of after the fill, on the start's path. (A page that faulted
		// anyway would be served by the pager with the same bytes.)
		if m.uffd != nil && !slices.ContainsFunc(ws.Runs, func(r snapshot.Run) bool { return !allSet(mapped, r) }) {
			if err := m.register(uint64(size)); err != nil {
				return err
			}
		}
	}
	read, err := src.fillWS(ctx, m, ws, mapped)
	m.stats.BytesRead += read
	if err != nil {
		return err
	}
	timeline.Mark(timeline.ReadChecked)
	if m.prefetch != nil {
		t0 = m.prefetch.start // the read began before the scrub
	}
	m.prefetched(ws, t0)
	// The next bulk restore of this working set keeps the same pages.
	m.prescrub = func() { m.Region.Prescrub(uint64(size), in, nil) }
	return nil
}

// allSet reports whether set holds every page of run (false for a nil
// set).
func allSet(set []bool, run snapshot.Run) bool {
	if set == nil {
		return false
	}
	for p := run.Start; p < run.Start+run.Count; p++ {
		if !set[p] {
			return false
		}
	}
	return true
}

// pageSet returns membership in runs.
func pageSet(runs []snapshot.Run) func(int) bool {
	var in []bool
	for _, r := range runs {
		if end := r.Start + r.Count; end > len(in) {
			in = append(in, make([]bool, end-len(in))...)
		}
		for p := r.Start; p < r.Start+r.Count; p++ {
			in[p] = true
		}
	}
	return func(p int) bool { return p < len(in) && in[p] }
}
