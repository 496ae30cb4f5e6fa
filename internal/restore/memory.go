package restore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/faultguard"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/uffd"
)

// Memory is a prepared region and what serves its missing pages.
type Memory struct {
	Region *engine.Region

	mu      sync.Mutex
	stats   Stats
	session *pager.Session
	uffd    *uffd.FD
	uffdLen uint64     // bytes registered with uffd, from the region's start
	image   *os.File   // mmap: the mapped image
	files   []*os.File // the pager's source files, open for a restarted pager
	// pagerSrc is what the pager serves this memory's faults from.
	pagerSrc pager.SourceSpec
	check    *mapCheck // mmap: verifies pages the kernel mapped
	// holes counts the mmap pages its file no longer covered (truncated
	// while mapped), which read as zeros instead of raising SIGBUS.
	holes  *faultguard.Mapping
	failed pager.Failures // the session's, kept by release
	// onBad, if set, runs once when Verify first finds a bad page (a
	// store mmap restore removes its materialised image).
	onBad func()
	// prescrub, if set, runs last when the memory is released: it
	// scrubs the region for the next restore of the same snapshot
	// (engine.Region.Prescrub), off that restore's start.
	prescrub func()
	// next, if set, is the pager session to open, when the memory is
	// released, for the region's next restore of the same snapshot
	// (ahead.go). Its source files are files, which release then keeps
	// open for it, and so is ws.
	next *ahead
	// inherited is the session opened ahead that the region's previous
	// owner left, from the start of a bulk restore until take installs
	// or closes it.
	inherited *ahead
	// ws is the working set a bulk restore filled from, with ws.img
	// still open, for the next restore of the same snapshot (next).
	ws *snapshot.WorkingSet
	// prefetch is a bulk restore's read of its working set, started by
	// files.prefetchWS and finished by files.fillWS.
	prefetch *prefetch
	// recache, if set, is the ws.img that a direct read left out of the
	// page cache, for release to read back in (files.recache).
	recache string
	// later, while a restore is being prepared, is the part that Start
	// leaves for its ready function (a bulk restore's fill).
	later func() error
	// spare, if set, is what a spare region for the next restore of the
	// same snapshot needs (Restorer.Spare): this restore left the pool
	// without an idle region of its function.
	spare *spareOf
	// tally counts the store chunks this process read for the restore,
	// by class of tier (Start attaches it to the reads' context).
	tally *store.Tally
}

// Paged reports whether a pager serves this memory's missing pages, or
// will once the restore's ready function has returned (Restorer.Start).
func (m *Memory) Paged() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.session != nil || m.uffd != nil
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
		// From the page the pager shares: no round trip on the first
		// call's response path.
		c := m.session.Counts()
		st.Faults = int64(c.Faults)
		st.BytesRead += int64(c.BytesRead)
		st.Store = st.Store.Add(c.Tiers)
		st.BadPages = int64(m.session.Errors())
	}
	if m.tally != nil {
		st.Store = st.Store.Add(m.tally.Bytes())
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
	if h := m.holeCount(); h > 0 {
		// Such a page is also found bad or unreadable above, unless the
		// check ran before it was touched: count it either way.
		m.stats.BadPages = max(m.stats.BadPages, h)
		err = errors.Join(err, fmt.Errorf("the image file shrank while mapped: %d pages past its end read as zeros: %w", h, errdefs.ErrCorrupt))
	}
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

// release detaches the pager and closes the files; it runs when the
// region is freed. First it collects a direct read that no fill collected
// and has ws.img read back into the page cache after one that did. Then,
// with nothing left that writes to the region (the range is unregistered
// from userfaultfd, so the pager cannot install a page), it prescrubs the
// region for its next owner.
func (m *Memory) release() {
	if p := m.prefetch; p != nil && p.staged != nil {
		// A restore that failed before its fill: the read must end
		// before its staging buffer is reused.
		p.staged.abandon()
		p.staged = nil
	}
	if m.recache != "" {
		recache(m.recache)
		m.recache = ""
	}
	m.mu.Lock()
	prescrub, next := m.prescrub, m.next
	m.prescrub, m.next = nil, nil
	if next != nil {
		next.src.Files, m.files = m.files, nil
		next.ws, m.ws = m.ws, nil
	}
	m.releaseLocked()
	m.mu.Unlock()
	if prescrub != nil {
		prescrub()
	}
	if next != nil {
		m.openAhead(next)
	}
}

func (m *Memory) releaseLocked() {
	if m.session != nil {
		// Keep the pager's counts: a guest that crashed on a page the
		// pager refused closes its instance, and so this memory, before
		// the worker asks why.
		c := m.session.Counts()
		m.stats.Faults = int64(c.Faults)
		m.stats.BytesRead += int64(c.BytesRead)
		m.stats.Store = m.stats.Store.Add(c.Tiers)
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
	closeFiles(m.files)
	m.files = nil
	_ = m.ws.Close()
	m.ws = nil
	if m.check != nil {
		m.check.stopAhead()
		m.check = nil // its mapping is about to go
	}
	if m.holes != nil {
		m.holes.Release()
		m.holes = nil
	}
}

// dropPrefetch drops a speculative read of a working set that was not
// the current one (Source.prefetchWS): its staging buffers go back once
// the reads have ended, in the background.
func (m *Memory) dropPrefetch() {
	p := m.prefetch
	m.prefetch = nil
	if p != nil && p.staged != nil {
		go p.staged.abandon()
	}
}

// keepWS keeps ws, with ws.img open, for the session opened ahead of the
// region's next restore (release hands it on), if keep is set and ws has
// an image; otherwise it closes ws.
func (m *Memory) keepWS(ws *snapshot.WorkingSet, keep bool) {
	if !keep || ws.Image() == nil {
		_ = ws.Close()
		return
	}
	m.mu.Lock()
	old := m.ws
	m.ws = ws
	m.mu.Unlock()
	_ = old.Close()
}

// holeCount is the number of mmap pages read as zeros because the image
// file shrank under them (none without a mapping).
func (m *Memory) holeCount() int64 {
	if m.holes == nil {
		return 0
	}
	return int64(m.holes.Holes())
}

// register registers the region's first size bytes with the memory's
// userfaultfd: from now on a missing page there faults to the pager.
func (m *Memory) register(size uint64) error {
	if err := m.uffd.Register(m.Region.Addr(), size); err != nil {
		return fmt.Errorf("register region: %w", err)
	}
	m.uffdLen = size
	return nil
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

// prefetched records a working set installed ahead of the call, whose
// prefetch began at t0.
func (m *Memory) prefetched(ws *snapshot.WorkingSet, t0 time.Time) {
	m.stats.Prefetch = time.Since(t0)
	m.stats.WSBytes, m.stats.WSPages = ws.Bytes(), ws.Pages
}
