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
//
// Every mode reads through a Source: the files of a local snapshot
// directory (Files) or the chunks of a snapshot in the store
// (Store.Snapshot). Each mode is written once, over the few things a Source
// provides (source.go); the sources differ only in how they read, and one
// conformance suite (conformance_test.go) runs every mode against both.
package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/timeline"
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
	// Store splits the chunks a restore from the store read, in this
	// process and in the pager's (faults so far), by the class of tier
	// that served them: this machine's caches, a peer's, the object
	// store. Zero for a restore from local files, and for the manifest
	// and metadata, read once when the snapshot is opened.
	Store store.TierBytes `json:"store"`
	// WSBytes is the size of the working set installed ahead of the call.
	WSBytes int64 `json:"ws_bytes"`
	// WSPages is the number of pages in that working set.
	WSPages int `json:"ws_pages"`
	// Direct is set when the working set was read with direct I/O, from
	// the disk through staging buffers, started before the engine had the
	// region (files.prefetchWS): ws.img was not all in the page cache.
	Direct bool `json:"direct,omitempty"`
	// PagerAhead is set when the pager session was opened ahead, when the
	// region's previous instance finished (ahead.go), so that this
	// restore's start did not hand one over.
	PagerAhead bool `json:"pager_ahead,omitempty"`
	// WSKept is set when the working set, ws.img open, came with that
	// session from the region's previous restore of the snapshot
	// (snapshot.ReopenWorkingSet), so that this start did not open it.
	WSKept bool `json:"ws_kept,omitempty"`
	// Recording is set when this restore records a new working set.
	Recording bool `json:"recording,omitempty"`
	// Reused is set when the region came from the function's region pool;
	// Scrub says what happened to the pages it still had mapped.
	Reused bool              `json:"reused,omitempty"`
	Scrub  engine.ScrubStats `json:"scrub"`
}

// Restorer prepares memory for restores from any Source. Lazy paging needs
// the pager process; Restorer works without one for eager and mmap.
type Restorer struct {
	Pager *pager.Pager
	// Regions, if set, lends eager and bulk restores the regions of the
	// function's finished instances (engine.RegionPool): their working set
	// is then read into pages that are already mapped.
	Regions *engine.RegionPool
	// Readahead is passed to the pager: pages it installs after each
	// faulting one (0: none).
	Readahead int

	// live, once set (SetPager), replaces Pager.
	live atomic.Pointer[pager.Pager]

	// Spares lets Spare prepare spare regions for bulk restores that left
	// the pool without an idle region of their function (spare.go). It
	// needs Regions.
	Spares bool
	spares spares

	// staging keeps reap's read buffers (*[]byte) between restores: a new
	// buffer's pages are fresh memory, which costs a page-table entry per
	// page on a VM, as the region pool explains.
	staging sync.Pool

	corrupt atomic.Int64
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

// CorruptRestores counts restores that failed because the snapshot's data
// failed its checks: a page its checksum, a stored chunk its
// authentication (errdefs.ErrCorrupt).
func (r *Restorer) CorruptRestores() int64 { return r.corrupt.Load() }

// pooled reports whether a restore in mode may reuse a region: eager and
// bulk fill memory with ordinary writes, which a mapped page takes in
// place (a recording bulk restore traces only pages outside the working
// set, which Scrub leaves missing). lazy and reap install pages with
// UFFDIO_COPY, which needs them missing, and mmap replaces the mapping.
func pooled(mode Mode) bool {
	return mode == Eager || mode == Bulk
}

// region returns the region a restore in mode prepares: from the pool
// under key, or new.
func (r *Restorer) region(mode Mode, key string, limit uint64) (*engine.Region, error) {
	if r.Regions != nil && pooled(mode) {
		return r.Regions.Get(key, limit)
	}
	return engine.NewRegion(limit)
}

// Prepare builds the memory of a new instance of src's snapshot in mode,
// in a region of limit bytes. With record set the pager records the order
// of first faults (Trace): under lazy, every page the instance touches, for
// a new working set; under reap and bulk, the pages it touched outside the
// working set. On error nothing is left mapped. A reap or bulk restore of a
// snapshot without a working set fails with errdefs.ErrNotFound.
func (r *Restorer) Prepare(ctx context.Context, mode Mode, src Source, limit uint64, record bool) (*Memory, error) {
	m, ready, err := r.Start(ctx, mode, src, limit, record)
	if err != nil {
		return nil, err
	}
	if ready != nil {
		if err := ready(); err != nil {
			m.Region.Free()
			return nil, err
		}
	}
	return m, nil
}

// Start is Prepare that returns as soon as the region may be handed to the
// engine, before a bulk restore has read its working set: ready finishes
// the memory (read the working set into place, register the range with
// userfaultfd, wait for the pager to hold the session) and must return
// nil before anything reads or writes the region. The engine runs it while
// it instantiates the restore module, or after it has reset an instance
// kept with the region (engine.Module.RestoreWhen), so that instantiation
// is off the start's longest path. If ready fails, the
// region is the caller's to free (RestoreWhen frees it); ready never frees
// it, since engine.Region.Free waits for ready. For the other modes, whose
// memory is ready when Start returns, ready is nil: running a function
// that has nothing to do on another goroutine would add a hand-off to the
// start for nothing.
func (r *Restorer) Start(ctx context.Context, mode Mode, src Source, limit uint64, record bool) (*Memory, func() error, error) {
	return r.start(ctx, mode, src, limit, record, false)
}

// start is Start; a spare's restore (spare set) is not counted among the
// corrupt restores, which count what requests met, and asks for no spare
// of its own.
func (r *Restorer) start(ctx context.Context, mode Mode, src Source, limit uint64, record, spare bool) (*Memory, func() error, error) {
	meta := src.Meta()
	fail := func(err error) error {
		if errors.Is(err, errdefs.ErrCorrupt) && !spare {
			r.corrupt.Add(1)
		}
		return fmt.Errorf("%s restore of %s: %w", mode, src, err)
	}
	key := meta.Function + "@" + meta.ModuleSHA
	region, err := r.region(mode, key, limit)
	if err != nil {
		return nil, nil, fail(err)
	}
	tally := new(store.Tally)
	ctx = store.WithTally(ctx, tally)
	m, later, err := prepare(mode, meta.ImageSize, region, record, func(m *Memory) error {
		switch mode {
		case Eager:
			return r.eager(ctx, m, src)
		case Mmap:
			return r.mmap(ctx, m, src)
		case Lazy:
			return r.lazy(ctx, m, src, nil, false, record)
		case Reap, Bulk:
			if mode == Bulk {
				// A session opened ahead may hold this snapshot's
				// working set open from the region's last restore.
				m.inherit()
				defer m.drop()
			}
			// Start the read first: everything else a restore
			// prepares, and the engine's instantiation, happen while
			// the disk works. A working set kept from the region's last
			// restore is read before the check that it is still current
			// (its ws.img matches it whatever the check finds), and the
			// read dropped if it is not.
			kept := m.keptWS(src)
			if kept != nil {
				src.prefetchWS(m, kept)
			}
			ws, err := src.workingSet(kept)
			if err != nil {
				return err
			}
			m.stats.WSKept = kept != nil && ws == kept
			timeline.Mark(timeline.WorkingSet)
			if mode == Bulk {
				if !m.stats.WSKept {
					m.dropPrefetch()
				}
				if m.prefetch == nil {
					src.prefetchWS(m, ws)
				}
			}
			err = r.lazy(ctx, m, src, ws, mode == Bulk, record)
			if err != nil || m.later == nil {
				_ = ws.Close()
				return err
			}
			fill := m.later
			m.later = func() error {
				err := fill()
				m.keepWS(ws, err == nil && mode == Bulk)
				return err
			}
			return nil
		}
		return fmt.Errorf("mode %q does not restore from a snapshot: %w", mode, errdefs.ErrInvalid)
	})
	if err != nil {
		return nil, nil, fail(err)
	}
	m.tally = tally
	if mode == Bulk && !spare && r.Spares && r.Regions != nil && (!region.Reused() || !r.Regions.Has(key, limit)) {
		m.spare = &spareOf{src: src, key: key, limit: limit, record: record}
	}
	if later == nil {
		return m, nil, nil
	}
	return m, func() error {
		if err := later(); err != nil {
			return fail(err)
		}
		return nil
	}, nil
}

// prepare is the frame every Prepare shares: check the image fits the cap,
// run fill over region, time it (Map excludes the prefetch), and free the
// region if fill fails. What fill leaves in m.later (a bulk restore's read
// of the working set) is returned to run later, timed the same way; it
// does not free the region. Without it the returned function is nil.
func prepare(mode Mode, imageSize int64, region *engine.Region, record bool, fill func(*Memory) error) (*Memory, func() error, error) {
	if limit := region.Limit(); uint64(imageSize) > limit {
		region.Free()
		return nil, nil, fmt.Errorf("snapshot memory (%d MiB) exceeds the memory cap (%d MiB): %w", imageSize>>20, limit>>20, errdefs.ErrInvalid)
	}
	m := &Memory{Region: region, stats: Stats{Mode: mode, Recording: record && mode == Lazy, Reused: region.Reused()}}
	region.OnFree(m.release)
	// Whatever fill writes lies in the image's range; a pool that gets the
	// region back scrubs it. Touch also makes the range accessible.
	if err := region.Touch(uint64(imageSize)); err != nil {
		region.Free()
		return nil, nil, err
	}
	t0 := time.Now()
	err := func() (err error) {
		defer catch(&err)
		return fill(m)
	}()
	if err != nil {
		region.Free()
		return nil, nil, err
	}
	later := m.later
	m.later = nil
	if later == nil {
		m.stats.Map = time.Since(t0) - m.stats.Prefetch
		return m, nil, nil
	}
	return m, func() (err error) {
		defer catch(&err)
		if err := later(); err != nil {
			return err
		}
		m.mu.Lock()
		m.stats.Map = time.Since(t0) - m.stats.Prefetch
		m.mu.Unlock()
		return nil
	}, nil
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
