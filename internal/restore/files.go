package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/timeline"
)

// Files returns the Source of a local snapshot directory: its files are
// read directly (memory.img sparse, its holes skipped) and every page
// checked against pages.crc; the pager reads memory.img itself, with the
// checksum table.
func Files(snap *snapshot.Snapshot) Source { return files{snap} }

type files struct{ snap *snapshot.Snapshot }

var _ Source = files{}

func (s files) String() string            { return s.snap.Dir }
func (s files) Meta() *snapshot.Meta      { return &s.snap.Meta }
func (s files) Local() *snapshot.Snapshot { return s.snap }

// workingSet opens ws.img with ws.json, so that a working set re-recorded
// in the background meanwhile does not mix with this one, or returns kept
// if it is still current (snapshot.ReopenWorkingSet).
func (s files) workingSet(kept *snapshot.WorkingSet) (*snapshot.WorkingSet, error) {
	return s.snap.ReopenWorkingSet(kept)
}

func (s files) openImage(context.Context) (imageReader, error) {
	f, err := os.Open(s.snap.Path(snapshot.ImageFile))
	if err != nil {
		return nil, fmt.Errorf("open image: %v: %w", err, errdefs.ErrCorrupt)
	}
	ext, err := snapshot.DataExtents(f, s.snap.Meta.ImageSize)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileImage{f: f, snap: s.snap, ext: ext}, nil
}

// fileImage reads memory.img in order, one extent at a time: a local disk
// serves one sequential stream best.
type fileImage struct {
	f    *os.File
	snap *snapshot.Snapshot
	ext  []snapshot.Extent
}

func (i *fileImage) extents() []snapshot.Extent { return i.ext }
func (i *fileImage) fetchers() int              { return 1 }
func (i *fileImage) close()                     { _ = i.f.Close() }

func (i *fileImage) readAt(_ context.Context, p []byte, off int64) (int, error) {
	n, err := i.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// check verifies every page, holes too: a data page punched into a hole
// reads as zeros and fails its checksum.
func (i *fileImage) check(mem []byte) error { return i.snap.VerifyPages(0, mem) }

func (s files) mapFile(context.Context) (mapping, error) {
	return mapping{path: s.snap.Path(snapshot.ImageFile), check: s.snap}, nil
}

// pagerSource opens memory.img and pages.crc for the pager, which verifies
// every page it reads against the checksum table. They stay open until the
// memory is released: a standby pager may need them.
func (s files) pagerSource(m *Memory) (pager.SourceSpec, error) {
	img, err := os.Open(s.snap.Path(snapshot.ImageFile))
	if err != nil {
		return pager.SourceSpec{}, fmt.Errorf("open image: %v: %w", err, errdefs.ErrCorrupt)
	}
	m.files = append(m.files, img)
	crc, err := os.Open(s.snap.Path(snapshot.CRCFile))
	if err != nil {
		return pager.SourceSpec{}, fmt.Errorf("open page checksums: %v: %w", err, errdefs.ErrCorrupt)
	}
	m.files = append(m.files, crc)
	return pager.SourceSpec{Kind: pager.KindFile, Files: []*os.File{img, crc}}, nil
}

// eachWS is REAP's read: the whole working-set file in one read, into a
// staging buffer, checked against its CRC, then handed over a run at a
// time.
func (s files) eachWS(_ context.Context, r *Restorer, ws *snapshot.WorkingSet, place func(dst int64, data []byte) error) (int64, error) {
	bp, _ := r.staging.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < ws.Bytes() {
		b := make([]byte, ws.Bytes())
		bp = &b
	}
	defer r.staging.Put(bp)
	buf := (*bp)[:ws.Bytes()]
	if err := ws.SetDirect(false); err != nil {
		return 0, fmt.Errorf("working set: %w", err)
	}
	if n, err := ws.Image().ReadAt(buf, 0); n != len(buf) {
		return int64(n), fmt.Errorf("read working set: %v (truncated?): %w", err, errdefs.ErrCorrupt)
	}
	if err := s.snap.CheckWorkingSetData(ws, buf); err != nil {
		return ws.Bytes(), err
	}
	off := 0
	for _, run := range ws.Runs {
		n := run.Count * snapshot.PageSize
		if err := place(int64(run.Start)*snapshot.PageSize, buf[off:off+n]); err != nil {
			return ws.Bytes(), err
		}
		off += n
	}
	return ws.Bytes(), nil
}

// prefetch is a working set's read started by prefetchWS and finished by
// fillWS: asynchronous reads into staging buffers (staged), which fillWS
// collects, copies into place and checks.
type prefetch struct {
	// ws is the working set being read: fillWS uses the read only for
	// the same one.
	ws    *snapshot.WorkingSet
	start time.Time
	// direct is set for a read from the disk (O_DIRECT), clear for a
	// staged copy from the page cache.
	direct bool
	// staged is the read in flight, nil once collected (by fillWS, or by
	// release for a restore that failed before its fill).
	staged *stagedRead
	read   int64
	err    error // of the read or of the checks: fillWS reads again, buffered
}

// prefetchWS starts reading the working set, before the region is
// scrubbed and handed to the engine.
//
// The reads are asynchronous, submitted from this goroutine (aio;
// docs/restore.md, "A read without a thread"), into staging buffers of one
// huge page each ("Staged direct reads"): ws.img in pieces of 2 MiB, up to
// stageWindow of them in flight. With O_DIRECT if ws.img is not all in
// the page cache, the disk then working while the restore goes on; a
// small working set found in the page cache is read the same way, the
// kernel copying it inside the submission. A larger cached one is left to
// fillWS's buffered read: its copy would hold the start for the whole
// submission. Measured on this project's VM ("Direct I/O", "Staged
// direct reads"), a direct read of a cold working set is faster than a
// buffered one at every size: it skips allocating, filling and copying
// page-cache pages, and nobody else reads ws.img. No page of the region is
// written before fillWS, so a speculative prefetch (a working set kept
// from the region's last restore, read before the check that it is still
// current) is the same read, dropped if the check fails. A file system
// without O_DIRECT, or a kernel without native AIO, leaves the read to
// fillWS.
func (s files) prefetchWS(m *Memory, ws *snapshot.WorkingSet) {
	f := ws.Image()
	if ws.Bytes() == 0 {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	p := &prefetch{ws: ws, start: time.Now(), direct: !cached(f, ws.Bytes())}
	if !p.direct && ws.Bytes() > stagePiece {
		return
	}
	// A working set kept from the last restore may have O_DIRECT set.
	if ws.SetDirect(p.direct) != nil {
		return // fillWS reads it buffered
	}
	if p.staged = startStaged(rc, ws); p.staged != nil {
		m.prefetch = p
	}
}

// recache has the kernel read the file at path into the page cache, in the
// background: a direct read leaves ws.img out of it, and the next restore
// of the snapshot should copy it from memory (fillWS), as every restore
// after the first did before direct reads. It runs when the restored
// memory is released, off every start (Memory.release).
func recache(path string) {
	go func() {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		_ = unix.Fadvise(fd, 0, 0, unix.FADV_WILLNEED)
		_ = unix.Close(fd)
	}()
}

// cached reports whether all n bytes of f are in the page cache
// (cachestat, Linux 6.5). If the kernel cannot say, it reports true: the
// buffered read is then used, as before direct reads.
func cached(f *os.File, n int64) bool {
	var cs unix.Cachestat_t
	err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{Off: 0, Len: uint64(n)}, &cs, 0)
	return err != nil || cs.Cache >= uint64((n+snapshot.PageSize-1)/snapshot.PageSize)
}

// verifyRuns checks the pages of runs in mem against the snapshot's page
// checksums.
func (s files) verifyRuns(mem []byte, runs []snapshot.Run) error {
	for _, run := range runs {
		if err := s.snap.VerifyPages(run.Start, mem[run.Start*snapshot.PageSize:(run.Start+run.Count)*snapshot.PageSize]); err != nil {
			return fmt.Errorf("working set: %w", err)
		}
	}
	return nil
}

// fillWS finishes the read prefetchWS started, if it succeeded; otherwise
// it reads the working-set file directly into its pages' places with
// scatter reads (up to IOV_MAX runs per preadv), through the page cache,
// then checks it against the snapshot's page checksums.
func (s files) fillWS(_ context.Context, m *Memory, ws *snapshot.WorkingSet, mapped []bool) (int64, error) {
	f := ws.Image() // of ws.Bytes(), checked by OpenWorkingSet
	if p := m.prefetch; p != nil && p.ws != ws {
		m.dropPrefetch() // of another working set: read this one below
	}
	if p := m.prefetch; p != nil {
		st := p.staged
		p.staged = nil
		p.read, p.err = st.finish(m.Region, func(runs []snapshot.Run) error { return s.verifyRuns(m.Region.Bytes(), runs) })
		if p.err == nil {
			if p.direct {
				m.stats.Direct = true
				m.recache = s.snap.Path(snapshot.WSImageFile)
			}
			return p.read, nil
		}
		// A checksum that failed on the prefetch fails again below, and is
		// reported from there; any other failure (a file system that
		// refuses O_DIRECT) is retried as a buffered read.
	}
	if err := ws.SetDirect(false); err != nil {
		return 0, fmt.Errorf("working set: %w", err)
	}
	// Ask for the whole file now: the kernel reads it in large requests
	// while the readers copy, instead of each reader's reads waiting for
	// their own read-ahead.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_WILLNEED)
	mem := m.Region.Bytes()
	// Two readers, each over half of the runs: the disk serves both
	// queues at once and the two cores share the cost of populating,
	// filling and checking the pages. Populating a run first makes its
	// pages present in one call instead of one fault each. Each reader
	// checks its pages against the snapshot's per-page checksums.
	parts := splitRuns(ws.Runs, 2)
	timeline.Mark(timeline.ReadIssued)
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
			errs[i] = s.verifyRuns(mem, p.runs)
		}()
	}
	wg.Wait()
	var total int64
	for i := range parts {
		total += read[i]
	}
	return total, errors.Join(errs...)
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

// iovMax is IOV_MAX, the most buffers one preadv takes.
const iovMax = 1024

// preadRuns reads consecutive bytes of fd from fileOff into the runs'
// places in mem, with scatter reads of up to IOV_MAX runs each.
func preadRuns(fd int, mem []byte, runs []snapshot.Run, fileOff int64) (int64, error) {
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
