// Package restore prepares a function instance's memory from a snapshot in
// one of several modes, the alternatives thaw measures against each other:
//
//	cold   no snapshot: the caller boots the module and runs its init
//	eager  read every stored page of the image into memory first
//	mmap   map the image privately; the kernel pages it in on fault
//	lazy   userfaultfd: the pager process serves each faulted page from the
//	       image, one round trip per page (REAP's baseline)
//	reap   read the working-set file in one read and install it with batched
//	       UFFDIO_COPY before the call; other pages stay lazy
//	bulk   read the working-set file straight into place with scatter reads
//	       (preadv) before registering userfaultfd, so the working set costs
//	       no per-page round trip and no extra copy; other pages stay lazy
//
// Prepare returns a Region whose first pages hold (or will, on fault) the
// snapshot's memory; the engine then instantiates the restore module over
// it.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/uffd"
)

// Mode names a way to start an instance.
type Mode string

// The restore modes. Cold is the baseline without a snapshot; Warm is not a
// restore at all but names "reuse an idle instance" in experiments.
const (
	Cold  Mode = "cold"
	Eager Mode = "eager"
	Mmap  Mode = "mmap"
	Lazy  Mode = "lazy"
	Reap  Mode = "reap"
	Bulk  Mode = "bulk"
	Warm  Mode = "warm"
)

// Modes lists every mode that starts an instance from a snapshot, and cold.
var Modes = []Mode{Cold, Eager, Mmap, Lazy, Reap, Bulk}

// Default is the mode new functions use: the fastest measured (see
// docs/restore.md).
const Default = Bulk

// ParseMode validates a mode name.
func ParseMode(s string) (Mode, error) {
	for _, m := range append(Modes, Warm) {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, 0, len(Modes)+1)
	for _, m := range append(Modes, Warm) {
		names = append(names, string(m))
	}
	return "", fmt.Errorf("unknown restore mode %q (want one of %s): %w", s, strings.Join(names, ", "), errdefs.ErrInvalid)
}

// UsesWorkingSet reports whether the mode prefetches a recorded working set.
func (m Mode) UsesWorkingSet() bool { return m == Reap || m == Bulk }

// Stats describe how one instance's memory was prepared.
type Stats struct {
	Mode Mode `json:"mode"`
	// Map is the time to set up the region: read, map or register it.
	Map time.Duration `json:"map_ns"`
	// Prefetch is the time to read and install the working set.
	Prefetch time.Duration `json:"prefetch_ns"`
	// Faults counts page faults served by the pager (lazy paging).
	Faults int64 `json:"faults"`
	// BadPages counts pages the pager refused because they failed their
	// checksum (served as zero pages so the guest does not hang): the
	// instance's memory is wrong and it must be discarded.
	BadPages int64 `json:"bad_pages,omitempty"`
	// Verified counts pages an mmap restore has checked against their
	// checksums after the fact (Memory.Verify).
	Verified int64 `json:"verified_pages,omitempty"`
	// Verify is the time those checks took, all calls so far.
	Verify time.Duration `json:"verify_ns,omitempty"`
	// BytesRead counts bytes read from snapshot files.
	BytesRead int64 `json:"bytes_read"`
	// WSBytes is the size of the working set installed ahead of the call.
	WSBytes int64 `json:"ws_bytes"`
	// WSPages is the number of pages in that working set.
	WSPages int `json:"ws_pages"`
	// Recording is set when this restore records a new working set.
	Recording bool `json:"recording,omitempty"`
	// Reused is set when the region came from the function's region pool;
	// Scrub says what happened to the pages it still had mapped.
	Reused bool              `json:"reused,omitempty"`
	Scrub  engine.ScrubStats `json:"scrub"`
}

// Restorer prepares memory for restores. Lazy paging needs the pager
// process; Restorer works without one for eager and mmap.
type Restorer struct {
	Pager *pager.Pager
	// Regions, if set, lends eager and bulk restores the regions of the
	// function's finished instances (engine.RegionPool): their working set
	// is then read into pages that are already mapped.
	Regions *engine.RegionPool

	// live, once set (SetPager), replaces Pager.
	live atomic.Pointer[pager.Pager]

	// staging keeps reap's read buffers (*[]byte) between restores: a new
	// buffer's pages are fresh memory, which costs a page-table entry per
	// page on a VM, as the region pool explains.
	staging sync.Pool
}

// SetPager makes later restores use p instead of Pager: the worker starts
// a new pager when the one it had gave up (died too often). Safe while
// restores run.
func (r *Restorer) SetPager(p *pager.Pager) { r.live.Store(p) }

func (r *Restorer) pager() *pager.Pager {
	if p := r.live.Load(); p != nil {
		return p
	}
	return r.Pager
}

// pooled reports whether a restore in mode may reuse a region: eager and
// bulk fill memory with ordinary writes, which a mapped page takes in
// place (a recording bulk restore traces only pages outside the working
// set, which Scrub leaves missing). lazy and reap install pages with
// UFFDIO_COPY, which needs them missing, and mmap replaces the mapping.
func pooled(mode Mode) bool {
	return mode == Eager || mode == Bulk
}

// region returns the region a restore in mode prepares: from the pool, or
// new.
func (r *Restorer) region(mode Mode, key string, limit uint64) (*engine.Region, error) {
	if r.Regions != nil && pooled(mode) {
		return r.Regions.Get(key, limit)
	}
	return engine.NewRegion(limit)
}

// Memory is a prepared region and what serves its missing pages.
type Memory struct {
	Region *engine.Region

	mu      sync.Mutex
	stats   Stats
	session *pager.Session
	uffd    *uffd.FD
	uffdLen uint64 // bytes registered with uffd, from the region's start
	image   *os.File
	crc     *os.File
	base    int64          // faults already counted before the pager took over
	check   *mapCheck      // mmap: verifies pages the kernel mapped
	failed  pager.Failures // the session's, kept by release
	// onBad, if set, runs once when Verify first finds a bad page (a
	// store mmap restore removes its materialised image).
	onBad func()
}

// Paged reports whether a pager serves this memory's missing pages.
func (m *Memory) Paged() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.session != nil
}

// Failures says why the pager refused or failed pages of this memory (all
// zero without a pager): the page source was unavailable past the fault
// budget, a page failed its checksum, or the pager died or stalled with
// faults outstanding. Any non-zero count means the instance must be
// discarded.
func (m *Memory) Failures() pager.Failures {
	m.mu.Lock()
	sess, f := m.session, m.failed
	m.mu.Unlock()
	if sess == nil {
		return f
	}
	return sess.Failures()
}

// Stats returns the preparation stats with the pager's fault counts so far.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	if m.session != nil {
		if ps, err := m.session.Stats(); err == nil {
			st.Faults = m.base + int64(ps.Faults)
			st.BytesRead += int64(ps.BytesRead)
			st.BadPages = int64(ps.Errors)
		}
	}
	return st
}

// Verify reports how many of the snapshot's pages this instance has been
// given that failed their checksum, so far. A non-zero count means the
// instance computed with wrong memory: discard it and its last answer.
//
// mmap: pages come straight from the kernel, so Verify checks those mapped
// since the last Verify (docs/restore.md); call it after every call, while
// the guest is not running. Modes with a pager: the pager checks each page
// it serves and Verify reads its count from a page they share (a memory
// load, no round trip), so it is cheap after every call.
// eager checks every page before the call: always 0. An mmap of a store
// snapshot maps a file materialised on local disk and is checked like a
// local image.
func (m *Memory) Verify() (int64, error) {
	m.mu.Lock()
	if m.check == nil {
		sess, bad := m.session, m.stats.BadPages
		m.mu.Unlock()
		if sess == nil {
			// No pager, or it has detached because the instance closed
			// (a guest that crashed on a refused page): release kept the
			// count.
			return bad, nil
		}
		return int64(sess.Errors()), nil
	}
	defer m.mu.Unlock()
	t0 := time.Now()
	n, bad, err := m.check.check()
	m.stats.Verify += time.Since(t0)
	m.stats.Verified += n
	m.stats.BadPages += int64(len(bad))
	if m.stats.BadPages > 0 && m.onBad != nil {
		m.onBad()
		m.onBad = nil
	}
	if err != nil {
		return m.stats.BadPages, fmt.Errorf("verify mapped pages: %w", err)
	}
	return m.stats.BadPages, nil
}

// Trace returns the pages faulted in first-fault order; only for a Memory
// prepared with record set.
func (m *Memory) Trace() ([]int, error) {
	if m.session == nil {
		return nil, fmt.Errorf("no pager session to trace")
	}
	offs, err := m.session.Trace()
	if err != nil {
		return nil, err
	}
	pages := make([]int, len(offs))
	for i, o := range offs {
		pages[i] = int(o / snapshot.PageSize)
	}
	return pages, nil
}

// release detaches the pager; it runs when the region is freed.
func (m *Memory) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session != nil {
		// Keep the pager's counts: a guest that crashed on a page the
		// pager refused closes its instance, and so this memory, before
		// the worker asks why.
		if ps, err := m.session.Stats(); err == nil {
			m.stats.Faults = m.base + int64(ps.Faults)
			m.stats.BytesRead += int64(ps.BytesRead)
			m.stats.BadPages = max(m.stats.BadPages, int64(ps.Errors))
		}
		m.failed = m.session.Failures()
		m.stats.BadPages = max(m.stats.BadPages, int64(m.session.Errors()))
		_ = m.session.Close()
		m.session = nil
	}
	if m.uffd != nil {
		// Unregister explicitly: the pager process holds a copy of the
		// descriptor, and a reused region must be free to register anew.
		if m.uffdLen > 0 {
			_ = m.uffd.Unregister(m.Region.Addr(), m.uffdLen)
		}
		_ = m.uffd.Close()
		m.uffd = nil
	}
	if m.image != nil {
		_ = m.image.Close()
		m.image = nil
	}
	if m.crc != nil {
		_ = m.crc.Close()
		m.crc = nil
	}
	if m.check != nil {
		m.check.stopAhead()
		m.check = nil // its mapping is about to go
	}
}

// Prepare builds the memory of a new instance of snap in mode, in a region
// of limit bytes. With record set the pager records the order of first
// faults (Trace): under lazy, every page the instance touches, for a new
// working set; under reap and bulk, the pages it touched outside the
// working set. On error nothing is left mapped.
func (r *Restorer) Prepare(ctx context.Context, mode Mode, snap *snapshot.Snapshot, limit uint64, record bool) (*Memory, error) {
	region, err := r.region(mode, snap.Meta.Function+"@"+snap.Meta.ModuleSHA, limit)
	if err != nil {
		return nil, fmt.Errorf("%s restore of %s: %w", mode, snap.Dir, err)
	}
	m, err := prepare(mode, snap.Meta.ImageSize, region, record, func(m *Memory) error {
		switch mode {
		case Eager:
			return r.eager(m, snap)
		case Mmap:
			return r.mmap(m, snap)
		case Lazy:
			return r.lazy(m, snap, nil, record)
		case Reap, Bulk:
			ws, err := snap.WorkingSet()
			if err != nil {
				return err
			}
			return r.lazy(m, snap, &prefetch{ws: ws, bulk: mode == Bulk}, record)
		}
		return fmt.Errorf("mode %q does not restore from a snapshot: %w", mode, errdefs.ErrInvalid)
	})
	if err != nil {
		return nil, fmt.Errorf("%s restore of %s: %w", mode, snap.Dir, err)
	}
	return m, nil
}

// prepare is the frame every Prepare shares: check the image fits the cap,
// run fill over region, time it (Map excludes the prefetch), and free the
// region if fill fails.
func prepare(mode Mode, imageSize int64, region *engine.Region, record bool, fill func(*Memory) error) (*Memory, error) {
	if limit := region.Limit(); uint64(imageSize) > limit {
		region.Free()
		return nil, fmt.Errorf("snapshot memory (%d MiB) exceeds the memory cap (%d MiB): %w", imageSize>>20, limit>>20, errdefs.ErrInvalid)
	}
	m := &Memory{Region: region, stats: Stats{Mode: mode, Recording: record && mode == Lazy, Reused: region.Reused()}}
	region.OnFree(m.release)
	// Whatever fill writes lies in the image's range; a pool that gets the
	// region back scrubs it.
	region.Touch(uint64(imageSize))
	t0 := time.Now()
	err := func() (err error) {
		defer catch(&err)
		return fill(m)
	}()
	if err != nil {
		region.Free()
		return nil, err
	}
	m.stats.Map = time.Since(t0) - m.stats.Prefetch
	return m, nil
}

// eager reads every data extent of the sparse image into place and
// verifies every page's checksum.
func (r *Restorer) eager(m *Memory, snap *snapshot.Snapshot) error {
	f, err := os.Open(snap.Path(snapshot.ImageFile))
	if err != nil {
		return fmt.Errorf("open image: %v: %w", err, errdefs.ErrCorrupt)
	}
	defer f.Close()
	mem := m.Region.Bytes()[:snap.Meta.ImageSize]
	extents, err := dataExtents(f, snap.Meta.ImageSize)
	if err != nil {
		return err
	}
	if m.Region.Reused() {
		// Every data page is read in whole below; any other page the
		// region still has mapped is a hole of the image: clear it.
		data := make([]bool, len(mem)/snapshot.PageSize+1)
		for _, e := range extents {
			for p := e.off / snapshot.PageSize; p < (e.off+e.len+snapshot.PageSize-1)/snapshot.PageSize; p++ {
				data[p] = true
			}
		}
		if err := m.scrub(snap.Meta.ImageSize, func(p int) bool { return p < len(data) && data[p] }, func(int) bool { return true }); err != nil {
			return err
		}
	}
	for _, e := range extents {
		m.Region.Populate(uint64(e.off), uint64(e.len))
		n, err := f.ReadAt(mem[e.off:e.off+e.len], e.off)
		m.stats.BytesRead += int64(n)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read image: %w", err)
		}
	}
	return snap.VerifyPages(0, mem)
}

type extent struct{ off, len int64 }

// dataExtents lists the non-hole ranges of a sparse file.
func dataExtents(f *os.File, size int64) ([]extent, error) {
	var out []extent
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		if hole > size {
			hole = size
		}
		if hole > data {
			out = append(out, extent{data, hole - data})
		}
		off = hole
	}
	return out, nil
}

// mmap maps the image privately over the region: pages come from the page
// cache (or disk) on first touch, and writes copy them. Nothing checks them
// on the way in; Memory.Verify checks the mapped pages after each call.
func (r *Restorer) mmap(m *Memory, snap *snapshot.Snapshot) error {
	// Without pagemap the pages could not be verified: refuse, and the
	// caller boots cold, rather than run on unchecked memory.
	if err := pagemap(); err != nil {
		return err
	}
	f, err := os.Open(snap.Path(snapshot.ImageFile))
	if err != nil {
		return fmt.Errorf("open image: %v: %w", err, errdefs.ErrCorrupt)
	}
	m.image = f // kept open to re-read pages the guest has copied
	m.Region.NoReuse()
	if snap.Meta.ImageSize == 0 {
		return nil
	}
	mem := m.Region.Bytes()[:snap.Meta.ImageSize]
	_, err = unix.MmapPtr(int(f.Fd()), 0, unsafe.Pointer(&mem[0]), uintptr(len(mem)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		return fmt.Errorf("map image: %w", err)
	}
	// The new mapping does not inherit the region's MADV_NOHUGEPAGE. Without
	// it the kernel maps large page-cache folios of the image with one PMD,
	// and the guest's first write into one splits it by unmapping all 512
	// pages, including ones the guest has read: Verify would no longer see
	// them. (EINVAL only on kernels without THP, where this cannot happen.)
	_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	m.check = newMapCheck(snap, f, mem)
	m.check.startAhead()
	return nil
}

type prefetch struct {
	ws   *snapshot.WorkingSet
	bulk bool
}

// lazy registers the region with userfaultfd, optionally installs a working
// set first, and hands the rest to the pager process.
func (r *Restorer) lazy(m *Memory, snap *snapshot.Snapshot, pf *prefetch, record bool) error {
	if r.pager() == nil {
		return fmt.Errorf("no pager process: %w", errdefs.ErrUnavailable)
	}
	img, err := os.Open(snap.Path(snapshot.ImageFile))
	if err != nil {
		return fmt.Errorf("open image: %v: %w", err, errdefs.ErrCorrupt)
	}
	m.image = img
	size := uint64(snap.Meta.ImageSize)
	if size == 0 {
		return nil
	}
	// The pager verifies every page it reads against the snapshot's
	// checksum table.
	crc, err := os.Open(snap.Path(snapshot.CRCFile))
	if err != nil {
		return fmt.Errorf("open page checksums: %v: %w", err, errdefs.ErrCorrupt)
	}
	m.crc = crc // open until the session ends: a standby pager may need it
	src := pager.SourceSpec{Kind: pager.KindFile, Files: []*os.File{img, crc}}
	spec := pager.Spec{Base: m.Region.Addr(), Length: size, Record: record}
	if pf != nil && pf.bulk {
		// Bulk fills the working set before registering: pages present at
		// registration never fault, so they cost neither a round trip nor
		// a UFFDIO_COPY. The pager needs no registration to take the
		// descriptor, so it gets it while the working set is read.
		attached := make(chan error, 1)
		go func() { attached <- r.attach(m, src, spec) }()
		fillErr := r.bulkFill(m, snap, pf.ws)
		if err := errors.Join(<-attached, fillErr); err != nil {
			return err
		}
		return m.register(size)
	}
	if pf == nil {
		if err := r.attach(m, src, spec); err != nil {
			return err
		}
		return m.register(size)
	}
	// reap: the pager takes the descriptor while the working set is read;
	// UFFDIO_COPY needs the range registered, so install after both.
	attached := make(chan error, 1)
	go func() { attached <- r.attach(m, src, spec) }()
	t0 := time.Now()
	bp, err := r.readWS(snap, pf.ws)
	defer r.staging.Put(bp)
	if err := errors.Join(<-attached, err); err != nil {
		return err
	}
	if err := m.register(size); err != nil {
		return err
	}
	m.stats.BytesRead += pf.ws.Bytes()
	if err := m.installRuns(pf.ws, (*bp)[:pf.ws.Bytes()]); err != nil {
		return err
	}
	m.stats.Prefetch = time.Since(t0)
	m.stats.WSBytes, m.stats.WSPages = pf.ws.Bytes(), pf.ws.Pages
	return nil
}

// attach opens a userfaultfd and hands it to the pager, which serves the
// faults of whatever range is registered with it from src.
func (r *Restorer) attach(m *Memory, src pager.SourceSpec, spec pager.Spec) error {
	u, err := uffd.Open()
	if err != nil {
		return fmt.Errorf("userfaultfd: %v: %w", err, errdefs.ErrUnavailable)
	}
	sess, err := r.pager().ServeSource(u, src, spec)
	if err != nil {
		_ = u.Close()
		return fmt.Errorf("pager: %w", err)
	}
	m.mu.Lock()
	m.uffd, m.session = u, sess
	m.mu.Unlock()
	return nil
}

// register registers the region's first size bytes with the attached
// userfaultfd: from now on a missing page there faults to the pager.
func (m *Memory) register(size uint64) error {
	if err := m.uffd.Register(m.Region.Addr(), size); err != nil {
		return fmt.Errorf("register region: %w", err)
	}
	m.uffdLen = size
	return nil
}

// readWS is REAP's read: the whole working-set file in one read, into a
// staging buffer (returned for r.staging even on error), checked against
// its CRC.
func (r *Restorer) readWS(snap *snapshot.Snapshot, ws *snapshot.WorkingSet) (*[]byte, error) {
	bp, _ := r.staging.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < ws.Bytes() {
		b := make([]byte, ws.Bytes())
		bp = &b
	}
	buf, err := readFile(snap.Path(snapshot.WSImageFile), (*bp)[:ws.Bytes()])
	if err != nil {
		return bp, err
	}
	return bp, snap.CheckWorkingSetData(ws, buf)
}

// installRuns is REAP's install step: buf holds the working set's pages
// back to back; each run of consecutive pages goes in with one UFFDIO_COPY.
func (m *Memory) installRuns(ws *snapshot.WorkingSet, buf []byte) error {
	base := m.Region.Addr()
	off := 0
	for _, run := range ws.Runs {
		n := run.Count * snapshot.PageSize
		if _, err := m.uffd.Copy(base+uintptr(run.Start*snapshot.PageSize), uintptr(unsafe.Pointer(&buf[off])), uint64(n)); err != nil {
			return fmt.Errorf("install working set: %w", err)
		}
		off += n
	}
	return nil
}

// bulkFill reads the working-set file directly into its pages' places with
// scatter reads (up to IOV_MAX runs per preadv), then checks it.
func (r *Restorer) bulkFill(m *Memory, snap *snapshot.Snapshot, ws *snapshot.WorkingSet) error {
	t0 := time.Now()
	f, err := os.Open(snap.Path(snapshot.WSImageFile))
	if err != nil {
		return fmt.Errorf("open working set: %v: %w", err, errdefs.ErrCorrupt)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != ws.Bytes() {
		return fmt.Errorf("working set file has the wrong size (truncated?): %w", errdefs.ErrCorrupt)
	}
	// Ask for the whole file now: the kernel reads it in large requests
	// while the readers copy, instead of each reader's reads waiting for
	// their own read-ahead.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_WILLNEED)
	mem := m.Region.Bytes()
	// mapped[p]: working-set page p is still mapped in a reused region and
	// is overwritten in place; other pages are populated first.
	var mapped []bool
	if m.Region.Reused() {
		// Every page outside the working set must be missing, for the
		// pager to serve.
		in := pageSet(ws.Runs)
		mapped = make([]bool, snap.Pages()) // working-set pages lie in the image
		keep := func(p int) bool {
			if in(p) {
				mapped[p] = true
				return true
			}
			return false
		}
		if err := m.scrub(snap.Meta.ImageSize, keep, nil); err != nil {
			return err
		}
	}
	// Two readers, each over half of the runs: the disk serves both
	// queues at once and the two cores share the cost of populating,
	// filling and checking the pages. Populating a run first makes its
	// pages present in one call instead of one fault each. Each reader
	// checks its pages against the snapshot's per-page checksums.
	parts := splitRuns(ws.Runs, 2)
	errs := make([]error, len(parts))
	read := make([]int64, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer catch(&errs[i])
			for _, run := range p.runs {
				if !allSet(mapped, run) {
					m.Region.Populate(uint64(run.Start)*snapshot.PageSize, uint64(run.Count)*snapshot.PageSize)
				}
			}
			// A descriptor per reader: read-ahead state is per open file,
			// and two interleaved streams on one would defeat it. Opened
			// through /proc/self/fd, it is the same file even if a new
			// working set has been renamed over the name meanwhile.
			rf := f
			if i > 0 {
				var err error
				if rf, err = os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd())); err != nil {
					errs[i] = fmt.Errorf("open working set: %v: %w", err, errdefs.ErrCorrupt)
					return
				}
				defer rf.Close()
			}
			read[i], errs[i] = preadRuns(int(rf.Fd()), mem, p.runs, p.fileOff)
			if errs[i] != nil {
				return
			}
			for _, run := range p.runs {
				if err := snap.VerifyPages(run.Start, mem[run.Start*snapshot.PageSize:(run.Start+run.Count)*snapshot.PageSize]); err != nil {
					errs[i] = fmt.Errorf("working set: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range parts {
		m.stats.BytesRead += read[i]
		if errs[i] != nil {
			return errs[i]
		}
	}
	m.stats.Prefetch = time.Since(t0)
	m.stats.WSBytes, m.stats.WSPages = ws.Bytes(), ws.Pages
	return nil
}

// catch turns a panic of a fill into an errdefs.ErrCorrupt error in *err.
// Every bound read from a file is checked before use; this is the second
// line: a restore runs in the request's goroutine or in one of its own,
// where a panic would end the whole worker, not one restore.
func catch(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("restore failed on a damaged snapshot: %v: %w", p, errdefs.ErrCorrupt)
	}
}

// scrub prepares a reused region (engine.Region.Scrub) and records what it
// did.
func (m *Memory) scrub(imageSize int64, keep, zero func(int) bool) error {
	st, err := m.Region.Scrub(uint64(imageSize), keep, zero)
	m.stats.Scrub = st
	if err != nil {
		return fmt.Errorf("scrub reused region: %w", err)
	}
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

// runPart is a slice of a working set's runs and where they start in
// ws.img.
type runPart struct {
	runs    []snapshot.Run
	fileOff int64
}

// splitRuns cuts runs into up to n parts of about equal bytes.
func splitRuns(runs []snapshot.Run, n int) []runPart {
	total := 0
	for _, r := range runs {
		total += r.Count
	}
	var parts []runPart
	start, pages, off := 0, 0, int64(0)
	for i, r := range runs {
		pages += r.Count
		if len(parts) < n-1 && pages*n >= total*(len(parts)+1) {
			parts = append(parts, runPart{runs: runs[start : i+1], fileOff: off})
			off = int64(pages) * snapshot.PageSize
			start = i + 1
		}
	}
	if start < len(runs) {
		parts = append(parts, runPart{runs: runs[start:], fileOff: off})
	}
	return parts
}

// preadRuns reads consecutive bytes of fd from fileOff into the runs'
// places in mem, with scatter reads of up to IOV_MAX runs each.
func preadRuns(fd int, mem []byte, runs []snapshot.Run, fileOff int64) (int64, error) {
	const iovMax = 1024
	var read int64
	for i := 0; i < len(runs); i += iovMax {
		chunk := runs[i:min(i+iovMax, len(runs))]
		iovs := make([][]byte, len(chunk))
		var want int64
		for j, run := range chunk {
			iovs[j] = mem[run.Start*snapshot.PageSize : (run.Start+run.Count)*snapshot.PageSize]
			want += int64(len(iovs[j]))
		}
		for want > 0 {
			n, err := unix.Preadv(fd, iovs, fileOff)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return read, fmt.Errorf("read working set: %w", err)
			}
			if n == 0 {
				return read, fmt.Errorf("working set file ended early: %w", errdefs.ErrCorrupt)
			}
			read += int64(n)
			fileOff += int64(n)
			want -= int64(n)
			iovs = advance(iovs, n)
		}
	}
	return read, nil
}

// advance drops the first n bytes from a list of buffers.
func advance(iovs [][]byte, n int) [][]byte {
	for n > 0 && len(iovs) > 0 {
		if n >= len(iovs[0]) {
			n -= len(iovs[0])
			iovs = iovs[1:]
			continue
		}
		iovs[0] = iovs[0][n:]
		n = 0
	}
	return iovs
}

// readFile fills buf from the start of the file at path in one read.
func readFile(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %v: %w", path, err, errdefs.ErrCorrupt)
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil {
		return buf[:n], fmt.Errorf("read %s: %v (truncated?): %w", path, err, errdefs.ErrCorrupt)
	}
	return buf, nil
}
