package restore

import (
	"fmt"
	"time"
	"unsafe"

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

// stageKeep is how many idle staging buffers the pool keeps (two restores'
// worth, directChunks each); stageIdle how long they are kept unused
// before the pool unmaps them.
const (
	stageKeep = 2 * directChunks
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

// readStaged reads the working set's runs from fd (ws.img, opened with
// O_DIRECT) through staging buffers, one piece of the file per buffer, up
// to directChunks pieces at once, and copies each piece's pages into their
// places in region (place). Each piece checks the pages it placed with
// verify, so the checks of one piece overlap the reads of the next.
func readStaged(fd int, region *engine.Region, runs []snapshot.Run, verify func([]snapshot.Run) error) (int64, error) {
	piece := func(off int64, frags []snapshot.Run) (read int64, err error) {
		defer catch(&err)
		buf, err := stages.Get()
		if err != nil {
			return 0, err
		}
		defer stages.Put(buf)
		n := int64(0)
		for _, f := range frags {
			n += int64(f.Count) * snapshot.PageSize
		}
		timeline.Mark(timeline.ReadIssued)
		if read, err = preadRuns(fd, buf, []snapshot.Run{{Count: int(n / snapshot.PageSize)}}, off); err != nil {
			return read, err
		}
		timeline.Mark(timeline.ReadDone)
		place(region, buf, frags)
		return read, verify(frags)
	}
	pieces := cutPieces(runs, stagePiece/snapshot.PageSize)
	if len(pieces) == 1 {
		return piece(0, pieces[0]) // no hand-off for a small working set
	}
	read := make([]int64, len(pieces))
	var g errgroup.Group
	g.SetLimit(directChunks)
	for i, frags := range pieces {
		g.Go(func() (err error) {
			read[i], err = piece(int64(i)*stagePiece, frags)
			return err
		})
	}
	err := g.Wait()
	var total int64
	for _, n := range read {
		total += n
	}
	return total, err
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
func cutPieces(runs []snapshot.Run, size int) [][]snapshot.Run {
	var pieces [][]snapshot.Run
	var cur []snapshot.Run
	room := size
	for _, r := range runs {
		for r.Count > 0 {
			n := min(r.Count, room)
			cur = append(cur, snapshot.Run{Start: r.Start, Count: n})
			r.Start += n
			r.Count -= n
			if room -= n; room == 0 {
				pieces = append(pieces, cur)
				cur, room = nil, size
			}
		}
	}
	if len(cur) > 0 {
		pieces = append(pieces, cur)
	}
	return pieces
}
