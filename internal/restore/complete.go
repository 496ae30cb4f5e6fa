package restore

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// completeChunk is how much of the image Complete reads, checks and
// installs at a time: large enough that a system call's cost is small
// against the copy, small enough that Complete stops soon when the memory
// is released.
const completeChunk = 1 << 20

// Complete installs, in the background, every data page of the image that
// a bulk restore left for the pager to serve: after the first call, a
// restored instance's next calls touch pages outside the working set (the
// Go allocator moves on to other spans, a collection walks the heap), and
// each is a round trip to the pager. Measured on this project's VM, calls
// 2 to 9 of a JavaScript function took 1.2-8 ms after a bulk restore
// against 0.85-1.3 after an eager one (docs/restore.md, "Completing a bulk
// restore").
//
// Call it once the instance has answered its first request. It returns at
// once; the returned channel is closed when the work has ended (nil if
// there is none: not a bulk restore of local files, or already called).
// Pages are read from memory.img, checked against pages.crc and installed
// with UFFDIO_COPY, which skips a page already present, so the guest and
// the pager may touch the same pages meanwhile: a page the guest wrote is
// never overwritten. A page that fails its check ends the work and stays
// missing; the pager refuses it if the guest touches it (Memory.Verify).
// Releasing the memory stops the work and waits for it.
func (m *Memory) Complete() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.completer
	m.completer = nil
	if c == nil || m.uffd == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stopComplete = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		n, err := c(ctx)
		m.mu.Lock()
		m.stats.Completed += n
		if err != nil && ctx.Err() == nil {
			m.stats.CompleteErr = err.Error()
		}
		m.mu.Unlock()
	}()
	return done
}

// completeFiles is Complete's work for a restore from snap's files: every
// data extent of memory.img, in chunks, each checked and then installed in
// the memory's registered range. It returns the bytes it installed.
func completeFiles(ctx context.Context, m *Memory, snap *snapshot.Snapshot) (int64, error) {
	img, err := files{snap}.openImage(ctx)
	if err != nil {
		return 0, err
	}
	defer img.close()
	buf := make([]byte, completeChunk)
	base := m.Region.Addr()
	var installed int64
	// The holes between extents read as zeros: the pager maps the zero
	// page over each on its first fault, a round trip each; map them all
	// now, each checked as the pager checks it (a data page punched into
	// a hole fails).
	var at int64
	zero := func(end int64) error {
		for p := at / snapshot.PageSize; p < end/snapshot.PageSize; p++ {
			if !snap.Zero(int(p)) {
				return fmt.Errorf("complete: page %d is a hole of the image but not of zeros: %w", p, errdefs.ErrCorrupt)
			}
		}
		if end > at {
			if err := m.uffd.ZeroPage(base+uintptr(at), uint64(end-at)); err != nil {
				return fmt.Errorf("complete: %w", err)
			}
		}
		return nil
	}
	for _, e := range img.extents() {
		if err := zero(e.Off); err != nil {
			return installed, err
		}
		at = e.End()
		for off := e.Off; off < e.End(); off += completeChunk {
			if err := ctx.Err(); err != nil {
				return installed, err
			}
			p := buf[:min(completeChunk, e.End()-off)]
			n, err := img.readAt(ctx, p, off)
			if err != nil {
				return installed, fmt.Errorf("complete: read image: %w", err)
			}
			if n != len(p) {
				// The extents came from the file: it shrank since.
				return installed, fmt.Errorf("complete: image ended at %d: %w", off+int64(n), errdefs.ErrCorrupt)
			}
			if err := snap.VerifyPages(int(off/snapshot.PageSize), p); err != nil {
				return installed, fmt.Errorf("complete: %w", err)
			}
			k, err := m.uffd.Copy(base+uintptr(off), uintptr(unsafe.Pointer(&p[0])), uint64(len(p)))
			installed += k
			if err != nil {
				return installed, fmt.Errorf("complete: %w", err)
			}
		}
	}
	return installed, zero(snap.Meta.ImageSize)
}
