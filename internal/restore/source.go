package restore

import (
	"context"

	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// Source is where a restore reads a snapshot's pages from: the files of a
// local snapshot directory (Files) or the chunks of a snapshot in the
// chunk store (Store.Snapshot). The modes (modes.go) are written once over
// it; a Source only reads, and checks what it reads:
//
//	eager  openImage lists the image's data ranges and reads them
//	mmap   mapFile names a local file holding the image, and the checksums
//	       to verify its mapped pages against
//	lazy   pagerSource tells the pager process where to read faults from
//	reap   eachWS hands over the working set's pages, checked, to install
//	bulk   fillWS reads the working set straight into its places
//
// Every page a Source hands over has been checked: against the snapshot's
// page checksums (files), or by the store's authentication of each chunk
// (store); a page that fails is errdefs.ErrCorrupt. Under mmap the pages
// come through the kernel and Memory.Verify checks them after each call;
// under lazy paging the pager checks each page it serves.
//
// A Source is safe for concurrent restores. Only this package implements
// Source (its reading methods are unexported); the conformance suite
// (conformance_test.go) runs every mode against each implementation.
type Source interface {
	// String names the snapshot in errors: its directory, or the store
	// snapshot's id.
	String() string
	// Meta is the snapshot's metadata.
	Meta() *snapshot.Meta
	// Local is the local snapshot whose files the pages are read from,
	// or nil when they come from the store. A working set is written
	// beside the local image it was recorded from (snapshot.WriteWorkingSet
	// reads its pages from memory.img), so only a restore with a local
	// snapshot can record or extend one.
	Local() *snapshot.Snapshot

	// workingSet is the snapshot's working set; errdefs.ErrNotFound if it
	// has none. The caller closes it (a local one holds ws.img open, so
	// that eachWS and fillWS read the image that matches it). kept, if
	// not nil, is one an earlier restore of the same region returned,
	// which workingSet takes over: it returns it again if it is still
	// the snapshot's current one, and closes it otherwise.
	workingSet(kept *snapshot.WorkingSet) (*snapshot.WorkingSet, error)
	// openImage opens memory.img for reading it whole (eager).
	openImage(ctx context.Context) (imageReader, error)
	// mapFile returns a file on local disk holding the image, for mmap,
	// and what its mapped pages are verified against.
	mapFile(ctx context.Context) (mapping, error)
	// pagerSource is what the pager serves faults from; files it opens
	// for the pager are kept in m (closed when m is released).
	pagerSource(m *Memory) (pager.SourceSpec, error)
	// eachWS calls place, possibly from several goroutines at once, with
	// every piece of the working set (whole pages, checked): dst is the
	// piece's offset in the image. It returns the bytes it read.
	eachWS(ctx context.Context, r *Restorer, ws *snapshot.WorkingSet, place func(dst int64, data []byte) error) (int64, error)
	// prefetchWS may start reading the working set at once, before the
	// region is scrubbed and the engine has it (a bulk restore calls it
	// first thing); fillWS then finishes that read and places the pages.
	// What it starts writes no page of the region, so ws may yet turn out
	// not to be the snapshot's current working set: Memory.dropPrefetch
	// drops the read then. A source with nothing to start does nothing.
	prefetchWS(m *Memory, ws *snapshot.WorkingSet)
	// fillWS reads the working set straight into its places in m's region,
	// or waits for what prefetchWS started, populating pages first unless
	// mapped (a page-indexed set, nil for a new region) says they are
	// mapped already, and checks it. It returns the bytes it read.
	fillWS(ctx context.Context, m *Memory, ws *snapshot.WorkingSet, mapped []bool) (int64, error)
}

// imageReader is a Source's memory.img, opened for one eager restore.
type imageReader interface {
	// extents are the ranges of the image that hold data; the rest is
	// zeros.
	extents() []snapshot.Extent
	// readAt reads the image's bytes at off into p; a short read at the
	// image's end is not an error.
	readAt(ctx context.Context, p []byte, off int64) (int, error)
	// fetchers is how many extents may be read at once.
	fetchers() int
	// check verifies mem, the whole image once read.
	check(mem []byte) error
	close()
}

// mapping is a file an mmap restore maps.
type mapping struct {
	path string
	// check holds the page checksums the mapped pages are verified
	// against.
	check *snapshot.Snapshot
	// written is what the source wrote to make the file (bytes read from
	// the store); 0 for a file that was there.
	written int64
	// onBad, if set, runs once when Verify first finds a bad page.
	onBad func()
}
