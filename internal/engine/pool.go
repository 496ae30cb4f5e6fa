package engine

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RegionPool keeps the regions of finished instances so that later
// instances of the same function can reuse them.
//
// Reuse is about page-table entries, not about saving an mmap: on a
// virtual machine every fresh page-table entry costs a trip to the
// hypervisor on first touch (13 µs a page measured on this project's VMs,
// against 0.2 µs on bare metal; docs/restore.md), and dropping a page
// with MADV_DONTNEED and faulting it again costs the same. A page that
// stays mapped and is overwritten in place costs a copy. A restore that
// fills its working set into a reused region therefore writes mostly into
// live pages.
//
// A region is only handed back to the same key (the function), and Scrub
// must run before the guest does: every page that stays mapped is then
// either overwritten by the restore or cleared, so nothing of the previous
// instance survives.
type RegionPool struct {
	mu     sync.Mutex
	budget uint64
	held   uint64    // sum of idle regions' Touched
	idle   []*Region // least recently freed first
	closed bool
	// limit, when set, lowers the budget to what it returns at each put
	// (the room a worker's memory budget leaves).
	limit func() uint64
}

// SetLimit makes the pool keep, from now on, at most min(budget, limit())
// bytes when a region comes back. Call it before the pool is used.
func (p *RegionPool) SetLimit(limit func() uint64) {
	p.mu.Lock()
	p.limit = limit
	p.mu.Unlock()
}

// Trim unmaps the least recently freed idle regions until the bytes the
// pool keeps are at most max.
func (p *RegionPool) Trim(max uint64) {
	p.mu.Lock()
	drop := p.evictLocked(max)
	p.mu.Unlock()
	unmap(drop)
}

// evictLocked takes the least recently freed idle regions out of the pool
// until it keeps at most max bytes, and returns them for unmap (outside
// p.mu: unmapping a large region takes a while).
func (p *RegionPool) evictLocked(max uint64) []*Region {
	var drop []*Region
	for p.held > max && len(p.idle) > 0 {
		old := p.idle[0]
		p.idle = p.idle[1:]
		p.held -= old.touched
		drop = append(drop, old)
	}
	return drop
}

// unmap releases the mappings of regions taken out of the pool, and
// closes what their last owners bequeathed.
func unmap(rs []*Region) {
	for _, r := range rs {
		closeAll(r.dropBequests()...)
		_ = unix.Munmap(r.resv)
	}
}

// NewRegionPool returns a pool that keeps idle regions while the bytes they
// may hold (their Touched prefix) sum to at most budget; the least recently
// freed are unmapped first.
func NewRegionPool(budget uint64) *RegionPool {
	return &RegionPool{budget: budget}
}

// Get returns an idle region of key with the given cap, or a new one. A
// reused region reports Reused and must be scrubbed before the guest runs.
// The region goes back to the pool when freed.
func (p *RegionPool) Get(key string, limit uint64) (*Region, error) {
	limit = roundPage(limit)
	p.mu.Lock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		r := p.idle[i]
		if r.key != key || uint64(len(r.mem)) != limit {
			continue
		}
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		p.held -= r.touched
		p.mu.Unlock()
		// A new Region for the same mapping: the old one stays freed, so a
		// late second Free by its previous owner cannot release the
		// mapping from under the new one.
		r.mu.Lock()
		nr := &Region{mem: r.mem, resv: r.resv, open: r.open, touched: r.touched, pool: p, key: key, reused: true, inherited: r.prescrubbed, inheritance: r.bequests}
		r.mem, r.resv, r.prescrubbed, r.bequests = nil, nil, nil, nil
		r.mu.Unlock()
		return nr, nil
	}
	p.mu.Unlock()
	r, err := NewRegion(limit)
	if err != nil {
		return nil, err
	}
	r.pool, r.key = p, key
	return r, nil
}

// Has reports whether the pool keeps an idle region that Get(key, limit)
// would return.
func (p *RegionPool) Has(key string, limit uint64) bool {
	limit = roundPage(limit)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.idle {
		if r.key == key && uint64(len(r.mem)) == limit {
			return true
		}
	}
	return false
}

// Room reports the most bytes one idle region may hold for the pool to
// keep it now: the budget, lowered by the limit if one is set.
func (p *RegionPool) Room() uint64 {
	p.mu.Lock()
	limit := p.limit
	p.mu.Unlock()
	if limit != nil {
		return min(p.budget, limit())
	}
	return p.budget
}

// put keeps a freed region, unmapping the oldest ones over the budget. It
// reports false if r itself does not fit.
func (p *RegionPool) put(r *Region) bool {
	r.mu.Lock()
	touched := r.touched
	r.mu.Unlock()
	budget := p.Room()
	p.mu.Lock()
	if p.closed || touched > budget {
		p.mu.Unlock()
		return false
	}
	p.idle = append(p.idle, r)
	p.held += touched
	drop := p.evictLocked(budget)
	p.mu.Unlock()
	unmap(drop)
	return true
}

// Idle reports how many regions the pool keeps and the bytes they may hold.
func (p *RegionPool) Idle() (regions int, bytes uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle), p.held
}

// Close unmaps every idle region. Regions in use are unmapped when freed.
func (p *RegionPool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.held, p.closed = nil, 0, true
	p.mu.Unlock()
	unmap(idle)
}

// ScrubStats counts what Scrub did with the pages a reused region had
// mapped.
type ScrubStats struct {
	// Kept pages stay mapped for the caller to overwrite.
	Kept int64 `json:"kept"`
	// Dropped pages were unmapped (MADV_DONTNEED): they read as missing.
	Dropped int64 `json:"dropped"`
	// Cleared pages stay mapped, zeroed in place.
	Cleared int64 `json:"cleared"`
}

// Scrub prepares a reused region for an instance whose memory starts as a
// snapshot of imageSize bytes; it does nothing to a new region. Of the
// pages the previous user left mapped:
//   - pages keep reports stay as they are: the caller overwrites each of
//     them entirely before the guest runs;
//   - other pages below imageSize are dropped, so that they read as
//     missing to userfaultfd (or as zeros) like a new region's, unless zero
//     reports that the snapshot's page is all zeros, in which case they
//     are cleared in place;
//   - pages from imageSize on are cleared in place: memory the guest grows
//     into must read as zeros.
//
// keep and zero are asked only about mapped pages, and may be nil (no
// page). If the kernel's page map cannot be
// read, Scrub drops every touched page, which is always correct. A region
// its previous owner prescrubbed (Prescrub) is checked against what that
// left mapped instead, without the page map.
func (r *Region) Scrub(imageSize uint64, keep, zero func(page int) bool) (ScrubStats, error) {
	var st ScrubStats
	if !r.Reused() {
		return st, nil
	}
	r.mu.Lock()
	pre := r.inherited
	r.inherited = nil
	r.mu.Unlock()
	if pre != nil && pre.matches(imageSize, keep, zero, &st) {
		return st, nil
	}
	_, st, err := r.scrub(imageSize, keep, zero)
	return st, err
}

// Prescrub scrubs the region now, as Scrub would for a next owner whose
// restore passes the same imageSize, keep and zero, and records which
// pages it left mapped. The region's owner calls it when it is done with
// the region, before the region goes back to its pool (an OnFree hook),
// once nothing writes to it any more. The next owner's Scrub then finds
// the work done: if every page left mapped is one its keep keeps, or one
// cleared here that it would clear too, it reads no page map and drops no
// page (calls that cost a trip to the hypervisor each on a virtual
// machine, docs/restore.md "Fixed cost of a restore"); otherwise it
// scrubs in full. Prescrub moves the scrub from the next request's start
// to the end of this instance. An error leaves the region to be scrubbed
// in full.
//
// It does nothing to a region that will not be reused (no pool, or
// NoReuse).
func (r *Region) Prescrub(imageSize uint64, keep, zero func(page int) bool) {
	r.mu.Lock()
	r.prescrubbed = nil
	reusable := r.pool != nil && !r.noReuse && r.mem != nil
	r.mu.Unlock()
	if !reusable {
		return
	}
	left, _, err := r.scrub(imageSize, keep, zero)
	if err != nil || left == nil {
		return
	}
	r.mu.Lock()
	r.prescrubbed = left
	r.mu.Unlock()
}

// prescrub records what a Prescrub left mapped: pages kept as they were
// (holding the previous owner's data) and pages cleared in place (zero).
type prescrub struct {
	kept, cleared []int
}

// matches reports whether the region a prescrub left is already as Scrub
// would leave it for imageSize, keep and zero: every kept page is one
// keep keeps (the caller overwrites it), every cleared page one keep
// keeps or Scrub would clear. It counts the kept pages in st.
func (p *prescrub) matches(imageSize uint64, keep, zero func(int) bool, st *ScrubStats) bool {
	imagePages := int(roundPage(imageSize) / PageSize)
	var kept int64
	for _, pg := range p.kept {
		if keep == nil || !keep(pg) {
			return false
		}
		kept++
	}
	for _, pg := range p.cleared {
		switch {
		case keep != nil && keep(pg):
			kept++
		case pg >= imagePages || (zero != nil && zero(pg)):
		default:
			return false
		}
	}
	st.Kept = kept
	return true
}

// scrub is Scrub on any region, reused or not. It returns the pages it
// left mapped (nil if it could not read the page map and dropped every
// touched page instead).
func (r *Region) scrub(imageSize uint64, keep, zero func(page int) bool) (*prescrub, ScrubStats, error) {
	var st ScrubStats
	left := &prescrub{}
	touched := r.Touched()
	if touched == 0 {
		return left, st, nil
	}
	// Pages past the memory's length may have been closed (Fit) with
	// contents the clearing below must reach.
	r.mu.Lock()
	err := r.openLocked(touched)
	r.mu.Unlock()
	if err != nil {
		return nil, st, err
	}
	mem := r.mem[:touched]
	present, err := presentPages(mem)
	if err != nil {
		if err := unix.Madvise(mem, unix.MADV_DONTNEED); err != nil {
			return nil, st, fmt.Errorf("drop reused region: %w", err)
		}
		st.Dropped = int64(len(mem) / PageSize)
		return nil, st, nil
	}
	imagePages := int(roundPage(imageSize) / PageSize)
	// Drop runs of consecutive pages with one madvise each.
	runStart, runLen := 0, 0
	flush := func() error {
		if runLen == 0 {
			return nil
		}
		b := mem[runStart*PageSize : (runStart+runLen)*PageSize]
		st.Dropped += int64(runLen)
		runLen = 0
		if err := unix.Madvise(b, unix.MADV_DONTNEED); err != nil {
			return fmt.Errorf("drop pages of reused region: %w", err)
		}
		return nil
	}
	for p, ok := range present {
		if !ok {
			continue
		}
		switch {
		case keep != nil && keep(p):
			st.Kept++
			left.kept = append(left.kept, p)
			continue
		case p >= imagePages || (zero != nil && zero(p)):
			clear(mem[p*PageSize : (p+1)*PageSize])
			st.Cleared++
			left.cleared = append(left.cleared, p)
			continue
		}
		if runLen > 0 && runStart+runLen == p {
			runLen++
			continue
		}
		if err := flush(); err != nil {
			return nil, st, err
		}
		runStart, runLen = p, 1
	}
	if err := flush(); err != nil {
		return nil, st, err
	}
	return left, st, nil
}

// roundPage rounds n up to a page, and 0 to one page.
func roundPage(n uint64) uint64 { return max(pageUp(n), PageSize) }

// pageUp rounds n up to a multiple of PageSize.
func pageUp(n uint64) uint64 { return (n + PageSize - 1) &^ (PageSize - 1) }

// Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	// PagemapPresent: the page is mapped in memory.
	PagemapPresent = 1 << 63
	// PagemapSwapped: the page is swapped out (mapped, but not in memory).
	PagemapSwapped = 1 << 62
	// PagemapFile: the page is file-backed (or shared anonymous).
	PagemapFile = 1 << 61
)

var (
	pagemapOnce sync.Once
	pagemapFile *os.File
	pagemapErr  error
)

// Pagemap returns /proc/self/pagemap, opened once for the process; reads use
// pread, so one descriptor serves every caller concurrently.
func Pagemap() (*os.File, error) {
	pagemapOnce.Do(func() {
		pagemapFile, pagemapErr = os.Open("/proc/self/pagemap")
	})
	return pagemapFile, pagemapErr
}

// ReadPagemap fills entries (8 bytes per page) with the page map of the
// pages starting at page-aligned address addr.
func ReadPagemap(addr uintptr, entries []byte) error {
	pm, err := Pagemap()
	if err != nil {
		return err
	}
	if _, err := pm.ReadAt(entries, int64(addr/PageSize*8)); err != nil {
		return fmt.Errorf("read pagemap: %w", err)
	}
	return nil
}

// Present reports, per page of the region's first n bytes, whether it is
// mapped: a page that is not has never been touched since the region was
// prepared (or was dropped by Scrub), so it still holds what its source
// would give it, the snapshot's page under a restore or zeros. Reading
// such a page to find out would map it: a pager round trip under
// userfaultfd, a new page-table entry in any case.
func (r *Region) Present(n uint64) ([]bool, error) {
	return presentPages(r.mem[:min(roundPage(n), uint64(len(r.mem)))])
}

// presentPages reports, per page of mem, whether it is mapped (present or
// swapped out): such a page would not fault as missing.
func presentPages(mem []byte) ([]bool, error) {
	n := len(mem) / PageSize
	entries := make([]byte, 8*n)
	if err := ReadPagemap(uintptr(unsafe.Pointer(&mem[0])), entries); err != nil {
		return nil, err
	}
	out := make([]bool, n)
	for p := range out {
		out[p] = binary.LittleEndian.Uint64(entries[8*p:])&(PagemapPresent|PagemapSwapped) != 0
	}
	return out, nil
}
