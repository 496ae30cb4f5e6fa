package restore

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/thaw-run/thaw/internal/aio"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/freelist"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/timeline"
)

// A direct read of a working set straight into its places hands the disk
// one 4 KiB segment per page: a working set's runs are a page or two long
// and scattered over the region, and the pages of a region are not
// physically contiguous. The disk of this project's VM takes at most 128
// segments per request and pays per segment, so such a read is slow: 0.44
// ms for 102 pages, 27 ms for 6191 (docs/restore.md, "Staged direct
// reads"). Read into a buffer backed by transparent huge pages instead,
// the same bytes go in segments of 64 KiB, and reading and then copying
// them into place takes 0.18 and 11 ms. So a direct read goes through
// staging buffers of one huge page each, pooled here.

// stagePiece is the size of a staging buffer, and of the piece of ws.img
// each read of a staged direct read fetches: one transparent huge page.
const stagePiece = 2 << 20

// stageKeep is how many idle staging buffers the pool keeps (a large
// working set's read uses that many, 16 MiB); stageIdle how long they are
// kept unused before the pool unmaps them.
const (
	stageKeep = 8
	stageIdle = 30 * time.Second
)

// stages is the process's pool of staging buffers: a new one costs a huge
// page's allocation and zeroing. They are plain anonymous memory, not tied
// to a restore or a worker, so one pool serves every Restorer; at most
// stageKeep*stagePiece bytes stay mapped while idle, and none after
// stageIdle.
var stages = freelist.List[[]byte]{
	New:     newStage,
	Release: func(b []byte) { _ = unix.Munmap(b) },
	Max:     stageKeep,
	Idle:    stageIdle,
}

// newStage maps a staging buffer and allocates its huge page.
func newStage() ([]byte, error) {
	b, err := MapHuge(stagePiece)
	if err != nil {
		return nil, fmt.Errorf("staging buffer: %w", err)
	}
	_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
	return b, nil
}

// MapHuge maps n bytes (rounded up to a whole huge page) of anonymous
// memory, aligned to a huge page, and asks for transparent huge pages
// behind it, so that a direct read into it hands the disk 64 KiB segments.
// Where the kernel has no huge page to give, the memory is ordinary pages:
// a read into it is then as slow as into any buffer, never wrong. Unmap the
// whole returned slice (unix.Munmap) when done.
func MapHuge(n int) ([]byte, error) {
	n = (n + stagePiece - 1) / stagePiece * stagePiece
	b, err := unix.Mmap(-1, 0, n+stagePiece, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	// Keep the aligned n bytes; unmap the rest.
	skip := int((stagePiece - uintptr(unsafe.Pointer(&b[0]))%stagePiece) % stagePiece)
	if skip > 0 {
		_ = unix.Munmap(b[:skip])
	}
	if tail := b[skip+n:]; len(tail) > 0 {
		_ = unix.Munmap(tail)
	}
	b = b[skip : skip+n : skip+n]
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b, nil
}

// stageWindow is how many pieces of a staged read are in flight at once
// (a variable for tests), and twice that the staging buffers it uses: a
// piece that has arrived is copied out of its buffer while the next ones
// are read into the others. This project's VM completes the requests of a
// submission together, after the last, so the pieces go to the disk a few
// at a time, and a piece that arrives has the next one submitted before
// its copy: one submission of a whole 24 MiB working set, copied after,
// took 7.8 ms; four pieces in flight and a copier per core, 5.3 ms,
// against 4.9 for one read of the file with no copy (docs/restore.md,
// "Pieces in flight").
var stageWindow = stageKeep / 2

// stagedRead is a working set being read asynchronously, in pieces of
// stagePiece bytes of ws.img, each into a staging buffer.
type stagedRead struct {
	rc     syscall.RawConn // ws.img, for the pieces submitted later
	batch  *aio.Batch
	pieces [][]snapshot.Run // cutPieces of the working set's runs
	size   int64            // of ws.img
	bufs   [][]byte         // staging buffers, by tag

	mu    sync.Mutex // the batch and the fields below, between copiers
	idle  []int      // tags of buffers free for the next piece
	piece []int      // piece in each buffer, by tag
	next  int        // first piece not yet submitted
	left  int        // pieces not yet collected by a copier
	err   error      // of the first copier that failed: the others stop
}

// startStaged submits the first pieces of ws.img (rc) into staging
// buffers, direct if the caller set O_DIRECT; nil if it could not (the
// caller reads it some other way, and fillWS clears O_DIRECT before a
// buffered read).
func startStaged(rc syscall.RawConn, ws *snapshot.WorkingSet) *stagedRead {
	pieces := cutPieces(ws.Runs, stagePiece/snapshot.PageSize)
	st := &stagedRead{rc: rc, pieces: pieces, size: ws.Bytes(), left: len(pieces)}
	for tag := range min(len(pieces), 2*stageWindow) {
		buf, err := stages.Get()
		if err != nil {
			st.free(nil)
			return nil
		}
		st.bufs = append(st.bufs, buf)
		st.idle = append(st.idle, tag)
	}
	st.piece = make([]int, len(st.bufs))
	var err error
	if st.batch, err = aio.NewBatch(); err != nil {
		st.free(nil)
		return nil
	}
	timeline.Mark(timeline.ReadIssued)
	if err := st.feed(); err != nil {
		st.free(st.batch.Close())
		return nil
	}
	return st
}

// feed submits the next pieces, as many as there are idle buffers, up to
// stageWindow in flight; the caller holds mu (or is startStaged). Control
// keeps ws.img's descriptor open until the submission returns, whatever
// closes the file meanwhile; the kernel holds the file until the reads end.
func (st *stagedRead) feed() error {
	var reqs []aio.Req
	for st.batch.Pending()+len(reqs) < stageWindow && st.next < len(st.pieces) && len(st.idle) > 0 {
		tag := st.idle[len(st.idle)-1]
		st.idle = st.idle[:len(st.idle)-1]
		off := int64(st.next) * stagePiece
		st.piece[tag] = st.next
		st.next++
		reqs = append(reqs, aio.Req{Tag: tag, Buf: st.bufs[tag][:min(stagePiece, st.size-off)], Off: off})
	}
	if len(reqs) == 0 {
		return nil
	}
	var err error
	if cerr := st.rc.Control(func(fd uintptr) { err = st.batch.Submit(int(fd), reqs...) }); cerr != nil {
		err = cerr
	}
	return err
}

// finish collects the pieces as they are read, copies each piece's pages
// into their places in region (place) and checks them with verify, until
// the working set is in place; then it gives the buffers back. A working
// set of several pieces is copied and checked by a copier per P (up to
// one per piece): a piece's copy and check read 2 MiB of memory twice,
// about as long as its read.
func (st *stagedRead) finish(region *engine.Region, verify func([]snapshot.Run) error) (int64, error) {
	var read atomic.Int64
	copier := func() (err error) {
		defer catch(&err)
		for {
			st.mu.Lock()
			if st.err != nil || st.left == 0 {
				st.mu.Unlock()
				return nil
			}
			st.left--
			tag, n, err := st.batch.Next()
			if err == nil {
				err = st.feed() // before the copy: the disk goes on meanwhile
			}
			st.mu.Unlock()
			if err != nil {
				return fmt.Errorf("read working set: %w", err)
			}
			timeline.Mark(timeline.ReadDone)
			i := st.piece[tag]
			if want := min(stagePiece, st.size-int64(i)*stagePiece); int64(n) != want {
				return fmt.Errorf("working set file ended early (piece %d: %d of %d bytes): %w", i, n, want, errdefs.ErrCorrupt)
			}
			read.Add(int64(n))
			place(region, st.bufs[tag], st.pieces[i])
			if err := verify(st.pieces[i]); err != nil {
				return err
			}
			st.mu.Lock()
			st.idle = append(st.idle, tag)
			err = st.feed()
			st.mu.Unlock()
			if err != nil {
				return fmt.Errorf("read working set: %w", err)
			}
		}
	}
	run := func() error {
		err := copier()
		if err != nil {
			st.mu.Lock()
			st.err = err
			st.mu.Unlock()
		}
		return err
	}
	var err error
	if n := min(len(st.pieces), runtime.GOMAXPROCS(0)); n <= 1 {
		err = run() // no hand-off for a small working set
	} else {
		var g errgroup.Group
		for range n - 1 {
			g.Go(run)
		}
		err = errors.Join(run(), g.Wait())
	}
	st.free(st.batch.Close())
	return read.Load(), err
}

// free gives the staging buffers back once the batch is closed with err; a
// batch whose reads may still write into them (aio.ErrInFlight) costs the
// buffers.
func (st *stagedRead) free(err error) {
	for _, b := range st.bufs {
		if errors.Is(err, aio.ErrInFlight) {
			_ = unix.Munmap(b)
		} else {
			stages.Put(b)
		}
	}
	st.bufs = nil
}

// abandon collects a read its restore will not use.
func (st *stagedRead) abandon() {
	st.free(st.batch.Close())
}

// place copies the pages of runs, which lie one after the other in buf,
// into their places in region, populating them first unless the region
// was reused (its working-set pages are then mapped).
func place(region *engine.Region, buf []byte, runs []snapshot.Run) {
	mem, populate := region.Bytes(), !region.Reused()
	at := 0
	for _, r := range runs {
		lo, hi := r.Start*snapshot.PageSize, (r.Start+r.Count)*snapshot.PageSize
		if populate {
			region.Populate(uint64(lo), uint64(hi-lo))
		}
		at += copy(mem[lo:hi], buf[at:])
	}
}

// cutPieces cuts runs, in ws.img's order, into pieces of size pages of the
// file (the last one shorter), splitting runs that cross a piece's end.
// The pieces share one array: a working set of thousands of runs is cut
// on a restore's start, where growing a slice per piece cost 60-100 µs.
func cutPieces(runs []snapshot.Run, size int) [][]snapshot.Run {
	pages := 0
	for _, r := range runs {
		pages += r.Count
	}
	n := (pages + size - 1) / size
	all := make([]snapshot.Run, 0, len(runs)+n) // a split adds one run
	pieces := make([][]snapshot.Run, 0, n)
	first, room := 0, size
	for _, r := range runs {
		for r.Count > 0 {
			k := min(r.Count, room)
			all = append(all, snapshot.Run{Start: r.Start, Count: k})
			r.Start += k
			r.Count -= k
			if room -= k; room == 0 {
				pieces = append(pieces, all[first:len(all):len(all)])
				first, room = len(all), size
			}
		}
	}
	if first < len(all) {
		pieces = append(pieces, all[first:])
	}
	return pieces
}
