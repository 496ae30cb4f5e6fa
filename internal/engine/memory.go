package engine

import (
	"fmt"
	"io"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PageSize is the host page size thaw snapshots and restores in.
const PageSize = 4096

// MemoryReservation and GuardSize are the address space every Region
// reserves: the whole index space of a 32-bit linear memory (4 GiB, or the
// cap if that is larger) followed by a guard. Of it only the prefix the
// linear memory has grown to, or that a restore fills, is readable and
// writable; the rest is PROT_NONE. This is wasmtime's *static* memory
// layout: compiled code then needs no bounds check for an access whose
// 32-bit index plus constant offset stays below MemoryReservation +
// GuardSize, because every such address either lies in the memory or
// faults, and a fault in guest code is a trap (docs/engine.md, "Linear
// memory"). GuardSize is wasmtime's default guard on 64-bit hosts: larger
// constant offsets keep an explicit check.
//
// The reservation costs address space only: PROT_NONE pages of a
// MAP_NORESERVE mapping are neither committed nor accounted, and 4 GiB is
// 1/32768 of a 47-bit address space.
const (
	MemoryReservation = 1 << 32
	GuardSize         = 32 << 20
)

// Region is the backing of one instance's linear memory: an anonymous
// mapping owned by thaw rather than by the Go heap. Owning it is what lets
// restore modes map a snapshot file over it, register it with userfaultfd,
// or fill it before the guest runs.
//
// A region reserves MemoryReservation + GuardSize bytes of address space
// at a fixed address; the instance's memory cap (Limit) is a prefix of it.
// Only [0, open) is accessible, where open is the memory's length or what
// a restore mode declared it fills (Touch), page-rounded: an access past
// the length faults. Growth within the cap makes more of the reservation
// read-write (mprotect), so the guest's memory never moves; a grow past
// the cap fails, which the guest sees as memory.grow returning -1.
type Region struct {
	mem  []byte // [0, cap) of resv
	resv []byte // the whole reservation, for munmap
	mu   sync.Mutex
	size uint64
	// open is the accessible prefix's length: a page multiple, at most
	// len(mem). [open, len(resv)) is PROT_NONE.
	open uint64
	// onFree runs (once) before the mapping is released; restore modes use it
	// to detach the region from the pager.
	onFree []func()
	freed  bool
	denied bool // a grow past the cap was refused

	// touched bounds the bytes anything may have written: the largest
	// size the guest had and what restore modes declared with Touch. Pages
	// past it are untouched, so a pool scrubs only below it.
	touched uint64
	// pool, when set, takes the region back on Free; key is the owner it
	// may be handed to again. noReuse marks a region that must be unmapped
	// instead (its memory is no longer plain anonymous pages).
	pool    *RegionPool
	key     string
	noReuse bool
	reused  bool
	// prescrubbed is what this owner's Prescrub did, for the next owner;
	// inherited is what the previous owner's did, for Scrub. A region
	// lent without a Prescrub by its last owner inherits nothing.
	prescrubbed, inherited *prescrub
	// bequests is what this owner left for the next (Bequeath);
	// inheritance what the previous owner left for this one (Inherit),
	// each by key.
	bequests, inheritance map[string]io.Closer
	// filling counts restore modes still writing the region (Fill,
	// WhileReady): Free waits for them.
	filling sync.WaitGroup
}

// NewRegion reserves the address space of a region whose memory cap is
// limit bytes (rounded up to a page), with nothing accessible yet. Pages
// cost nothing until touched (MAP_NORESERVE). Transparent huge pages are
// disabled: userfaultfd resolves faults per 4 KiB page and huge pages made
// fresh-memory copies slower on this class of machine.
func NewRegion(limit uint64) (*Region, error) {
	limit = roundPage(limit)
	span := max(limit, MemoryReservation) + GuardSize
	resv, err := unix.Mmap(-1, 0, int(span), unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserve %d bytes of address space for linear memory: %w", span, err)
	}
	_ = unix.Madvise(resv, unix.MADV_NOHUGEPAGE)
	return &Region{mem: resv[:limit:limit], resv: resv}, nil
}

// Reserved returns the reservation up to its guard: what may ever be
// accessible, and the capacity a static memory over the region reports.
// GuardSize bytes of inaccessible guard follow it. Only its first
// Accessible bytes may be touched.
func (r *Region) Reserved() []byte {
	n := len(r.resv) - GuardSize
	return r.resv[:n:n]
}

// Bytes returns the memory up to the cap. Only its first pages are
// accessible (Region): touching a byte past what the memory has grown to,
// or what Touch declared, faults.
func (r *Region) Bytes() []byte { return r.mem }

// Addr is the address of the first byte of the region.
func (r *Region) Addr() uintptr { return uintptr(unsafe.Pointer(&r.mem[0])) }

// Limit is the region's capacity in bytes: the instance's memory cap.
func (r *Region) Limit() uint64 { return uint64(len(r.mem)) }

// Size is the linear memory's current length in bytes.
func (r *Region) Size() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.size
}

// OnFree registers f to run when the region is released, or runs it now
// if the region already was.
func (r *Region) OnFree(f func()) {
	r.mu.Lock()
	if r.freed {
		r.mu.Unlock()
		f()
		return
	}
	r.onFree = append(r.onFree, f)
	r.mu.Unlock()
}

// Reallocate implements experimental.LinearMemory.
func (r *Region) Reallocate(size uint64) []byte {
	r.mu.Lock()
	if size > uint64(len(r.mem)) {
		r.denied = true
		r.mu.Unlock()
		return nil
	}
	if err := r.openLocked(size); err != nil {
		// The kernel refused the mprotect (out of memory maps): the
		// guest sees a failed grow, as for one past the cap.
		r.mu.Unlock()
		return nil
	}
	r.size = size
	r.touched = max(r.touched, size)
	r.mu.Unlock()
	return r.mem[:size:size]
}

// openLocked makes [0, n) of the region (page-rounded, at most the cap)
// readable and writable, if it is not yet.
func (r *Region) openLocked(n uint64) error {
	n = min(pageUp(n), uint64(len(r.mem)))
	if n <= r.open {
		return nil
	}
	if err := unix.Mprotect(r.mem[r.open:n], unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return fmt.Errorf("open linear memory to %d bytes: %w", n, err)
	}
	r.open = n
	return nil
}

// Fit makes the region accessible exactly up to the memory's current
// length: pages a restore filled or a previous owner from the pool grew
// into, past the length, become PROT_NONE again, so that the guest's
// accesses past its length fault. Their contents stay (a pool's Scrub has
// cleared what lies past a snapshot's image) and a later grow makes them
// accessible again. An engine that relies on the layout (wasmtime's static
// memory) calls it once the memory has its restored length and no restore
// mode writes to it any more, before guest code runs.
func (r *Region) Fit() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := pageUp(r.size)
	if r.open <= size {
		return nil
	}
	if err := unix.Mprotect(r.mem[size:r.open], unix.PROT_NONE); err != nil {
		return fmt.Errorf("close linear memory past %d bytes: %w", size, err)
	}
	r.open = size
	return nil
}

// Accessible is the length of the region's readable and writable prefix.
func (r *Region) Accessible() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open
}

func (r *Region) grewPastLimit() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.denied
}

// Touch records that [0, n) may be written before the guest runs (a
// restore mode's fill), so that a pool reusing the region scrubs it, and
// makes that range readable and writable. An engine that relies on the
// layout closes what lies past the memory's length again (Fit).
func (r *Region) Touch(n uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.touched = max(r.touched, min(n, uint64(len(r.mem))))
	return r.openLocked(n)
}

// NoReuse marks the region as never to be reused: its pages are no longer
// plain anonymous memory (a file was mapped over it), or no later restore
// could use what it holds (a spare region that failed).
func (r *Region) NoReuse() {
	r.mu.Lock()
	r.noReuse = true
	r.mu.Unlock()
}

// Reused reports whether the region came from a pool: pages below Touched
// may hold another instance's memory until Scrub has run.
func (r *Region) Reused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reused
}

// Touched is the length of the region's prefix that may hold written
// pages; pages past it have never been touched.
func (r *Region) Touched() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.touched
}

// Fill marks a write into the region's memory that its owner has started
// and may not wait for, such as a restore's read of a working set started
// before the engine has the region (restore.Restorer.Start): Free waits
// until done is called, so the region is never unmapped or lent to
// another instance under the write. Call done exactly once, when nothing
// writes any more.
func (r *Region) Fill() (done func()) {
	r.filling.Add(1)
	return r.filling.Done
}

// Free implements experimental.LinearMemory: it runs the OnFree hooks and
// then returns the region to its pool, or releases the mapping, once every
// Fill is done.
func (r *Region) Free() {
	r.filling.Wait()
	r.mu.Lock()
	if r.freed {
		r.mu.Unlock()
		return
	}
	r.freed = true
	hooks := r.onFree
	pool := r.pool
	if r.noReuse {
		pool = nil
	}
	r.mu.Unlock()
	for _, f := range hooks {
		f()
	}
	// An inheritance this owner did not take is of no use to the next.
	closeAll(r.dropInheritance()...)
	if pool != nil && pool.put(r) {
		return
	}
	closeAll(r.dropBequests()...)
	_ = unix.Munmap(r.resv)
}

// Populate makes the pages of [off, off+n) present and writable in one call
// (MADV_POPULATE_WRITE), so filling them afterwards takes no page faults.
// A fault per fresh page costs 0.2 µs on bare metal but 13 µs measured on
// this project's VMs, against 0.8 µs per page populated in bulk
// (docs/restore.md). Populated pages are no longer missing, so never
// populate pages that userfaultfd must still serve. On kernels without
// the advice it does nothing and the fill faults as before. The range must
// be accessible (Touch).
func (r *Region) Populate(off, n uint64) {
	if n == 0 || off+n > uint64(len(r.mem)) {
		return
	}
	lo := off &^ (PageSize - 1)
	_ = unix.Madvise(r.mem[lo:off+n], unix.MADV_POPULATE_WRITE)
}
