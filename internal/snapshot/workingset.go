package snapshot

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Run is a range of consecutive pages: Count pages from page Start.
type Run struct {
	Start int `json:"start"`
	Count int `json:"count"`
}

// WorkingSet describes ws.img: the pages one invocation touched after a
// restore (REAP's working set), stored back to back in page order so that
// consecutive pages form runs that install with one copy each.
type WorkingSet struct {
	Runs  []Run `json:"runs"`
	Pages int   `json:"pages"`
	// CRC is the CRC-32C of ws.img.
	CRC uint32 `json:"crc"`
	// TraceOrder lists the pages in first-fault order, as recorded. It is
	// kept in ws.trace, not in ws.json, so restores need not parse it.
	TraceOrder []int     `json:"-"`
	Recorded   time.Time `json:"recorded"`
}

// Bytes is the size of ws.img.
func (w *WorkingSet) Bytes() int64 { return int64(w.Pages) * PageSize }

// WorkingSet returns the snapshot's working set, or errdefs.ErrNotFound if
// none has been recorded.
func (s *Snapshot) WorkingSet() (*WorkingSet, error) {
	b, err := atomicfile.ReadFile(s.Path(WSMetaFile), MaxWSMetaBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("working set: %w", errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("working set %s: %w", s.Dir, err)
	}
	ws, err := DecodeWorkingSet(b, s.Pages())
	if err != nil {
		return nil, fmt.Errorf("working set %s: %w", s.Dir, err)
	}
	return ws, nil
}

// DecodeWorkingSet parses and validates ws.json for an image of pages
// pages: its runs are in order, do not overlap and lie in the image, and
// its page count is theirs. So every page a run names is a valid index of
// the image and Bytes (the size of ws.img) is at most the image's size.
// Every comparison is written so that it cannot overflow, whatever numbers
// the file holds. Any failure is errdefs.ErrCorrupt.
func DecodeWorkingSet(b []byte, pages int) (*WorkingSet, error) {
	if len(b) > MaxWSMetaBytes {
		return nil, fmt.Errorf("ws.json: %d bytes, at most %d: %w", len(b), MaxWSMetaBytes, errdefs.ErrCorrupt)
	}
	var ws WorkingSet
	if err := json.Unmarshal(b, &ws); err != nil {
		return nil, fmt.Errorf("ws.json: %v: %w", err, errdefs.ErrCorrupt)
	}
	n, end := 0, 0 // pages so far; first page after the previous run
	for _, r := range ws.Runs {
		// r.Start >= end >= 0 and r.Count <= pages-r.Start: no sum of
		// file values is ever formed before both are known to be small.
		if r.Start < end || r.Count <= 0 || r.Start > pages || r.Count > pages-r.Start {
			return nil, fmt.Errorf("working-set run %+v overlaps the previous one or lies outside the image of %d pages: %w", r, pages, errdefs.ErrCorrupt)
		}
		end = r.Start + r.Count
		n += r.Count // <= end <= pages
	}
	if n != ws.Pages {
		return nil, fmt.Errorf("working-set runs hold %d pages, header says %d: %w", n, ws.Pages, errdefs.ErrCorrupt)
	}
	return &ws, nil
}

// CheckWorkingSetData verifies that data is the whole of ws.img.
func (s *Snapshot) CheckWorkingSetData(ws *WorkingSet, data []byte) error {
	if int64(len(data)) != ws.Bytes() {
		return fmt.Errorf("working set %s: %d bytes, want %d (truncated?): %w", s.Dir, len(data), ws.Bytes(), errdefs.ErrCorrupt)
	}
	if crc32.Checksum(data, castagnoli) != ws.CRC {
		return fmt.Errorf("working set %s: checksum mismatch: %w", s.Dir, errdefs.ErrCorrupt)
	}
	return nil
}

// ExtendWorkingSet writes the snapshot's working set as ws plus pages, in
// that order, each page once, copied from this snapshot's image as
// WriteWorkingSet does. ws may be this snapshot's own working set (extended
// by the pages an instance faulted on outside it) or another snapshot's (a
// checkpoint inheriting its parent's); pages past this image are ignored.
func (s *Snapshot) ExtendWorkingSet(ws *WorkingSet, pages []int) (*WorkingSet, error) {
	in := make(map[int]bool, ws.Pages+len(pages))
	all := make([]int, 0, ws.Pages+len(pages))
	add := func(p int) {
		if p >= 0 && p < s.Pages() && !in[p] {
			in[p] = true
			all = append(all, p)
		}
	}
	for _, r := range ws.Runs {
		for p := r.Start; p < r.Start+r.Count; p++ {
			add(p)
		}
	}
	for _, p := range pages {
		add(p)
	}
	return s.WriteWorkingSet(all)
}

// RunsOf turns page numbers into sorted runs of consecutive pages.
func RunsOf(pages []int) []Run {
	sorted := append([]int(nil), pages...)
	sort.Ints(sorted)
	var runs []Run
	for i, p := range sorted {
		if i > 0 && p == sorted[i-1] {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].Start+runs[n-1].Count == p {
			runs[n-1].Count++
			continue
		}
		runs = append(runs, Run{Start: p, Count: 1})
	}
	return runs
}

// WriteWorkingSet records trace (pages in first-fault order) as the
// snapshot's working set, copying the pages' contents from the image (never
// from a live instance, whose memory the invocation has changed). It
// replaces any previous working set atomically.
func (s *Snapshot) WriteWorkingSet(trace []int) (*WorkingSet, error) {
	ws := &WorkingSet{Runs: RunsOf(trace), TraceOrder: trace, Recorded: time.Now().UTC()}
	img, err := os.Open(s.Path(ImageFile))
	if err != nil {
		return nil, fmt.Errorf("working set: %w", err)
	}
	defer img.Close()
	out, err := atomicfile.Create(s.Dir, atomicfile.TempPattern(WSImageFile), FileMode)
	if err != nil {
		return nil, fmt.Errorf("working set: %w", err)
	}
	defer out.Abort()
	h := crc32.New(castagnoli)
	w := io.MultiWriter(out, h)
	for _, r := range ws.Runs {
		if r.Start < 0 || r.Count <= 0 || r.Start > s.Pages() || r.Count > s.Pages()-r.Start {
			return nil, fmt.Errorf("working set: page %d outside the image: %w", r.Start+r.Count-1, errdefs.ErrInvalid)
		}
		buf := make([]byte, r.Count*PageSize)
		if _, err := img.ReadAt(buf, int64(r.Start)*PageSize); err != nil && err != io.EOF {
			return nil, fmt.Errorf("working set: read pages: %w", err)
		}
		// Never copy a damaged page into the working set: its own checksum
		// would then vouch for it.
		if err := s.VerifyPages(r.Start, buf); err != nil {
			return nil, err
		}
		if _, err := w.Write(buf); err != nil {
			return nil, fmt.Errorf("working set: write pages: %w", err)
		}
		ws.Pages += r.Count
	}
	ws.CRC = h.Sum32()
	// ws.img is renamed first and ws.json last: a reader that sees the new
	// ws.json always finds the matching ws.img; one that pairs an old ws.json
	// with the new ws.img fails its checksum and falls back.
	if err := out.Commit(s.Path(WSImageFile)); err != nil {
		return nil, err
	}
	order := make([]byte, 4*len(trace))
	for i, p := range trace {
		binary.LittleEndian.PutUint32(order[4*i:], uint32(p))
	}
	if err := atomicfile.WriteFile(s.Path(WSTraceFile), order, FileMode); err != nil {
		return nil, err
	}
	mj, err := json.Marshal(ws)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(s.Path(WSMetaFile), mj, FileMode); err != nil {
		return nil, err
	}
	return ws, nil
}

// RemoveWorkingSet deletes the working set so the next restore re-records.
func (s *Snapshot) RemoveWorkingSet() error {
	err := os.Remove(s.Path(WSMetaFile))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
