package snapshot

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

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

	// img is ws.img, opened together with ws.json by OpenWorkingSet so
	// that the two match; nil otherwise. encoded is ws.json as read.
	img     *os.File
	encoded []byte
	// key identifies the ws.json read (zero when it could not be told
	// apart: no inode), so that ReopenWorkingSet can tell whether it is
	// still the current one.
	key wsKey
	// direct records whether img has O_DIRECT set (SetDirect).
	direct bool
}

// Encoded is ws.json as read by WorkingSet or OpenWorkingSet (nil for a
// working set built in memory).
func (w *WorkingSet) Encoded() []byte { return w.encoded }

// Image is ws.img as opened by OpenWorkingSet, or nil when the working set
// was read without it.
func (w *WorkingSet) Image() *os.File { return w.img }

// Close closes the image OpenWorkingSet opened; it is a no-op for a
// working set read without one.
func (w *WorkingSet) Close() error {
	if w == nil || w.img == nil {
		return nil
	}
	err := w.img.Close()
	w.img = nil
	return err
}

// SetDirect sets or clears O_DIRECT on Image, with no system call when it
// is already so. The working set's user calls it before each read of
// Image: a working set kept open for a later restore (ReopenWorkingSet)
// keeps the flag its last user left.
func (w *WorkingSet) SetDirect(on bool) error {
	if w.img == nil {
		return fmt.Errorf("working set %w", os.ErrClosed)
	}
	if w.direct == on {
		return nil
	}
	rc, err := w.img.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		var fl int
		if fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0); ferr != nil {
			return
		}
		if on {
			fl |= unix.O_DIRECT
		} else {
			fl &^= unix.O_DIRECT
		}
		_, ferr = unix.FcntlInt(fd, unix.F_SETFL, fl)
	}); err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("direct I/O: %w", ferr)
	}
	w.direct = on
	return nil
}

// wsLocks order a working set's readers and writers within this process.
// WriteWorkingSet renames ws.img, ws.trace and ws.json into place under the
// write lock and OpenWorkingSet reads ws.json and opens ws.img under the
// read lock, so a reader never pairs one recording's ws.json with another's
// ws.img while a working set is extended in the background. The lock is
// taken by directory (snapshots are opened afresh per restore), striped so
// that the set stays bounded.
var wsLocks [32]sync.RWMutex

func wsLock(dir string) *sync.RWMutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(dir))
	return &wsLocks[h.Sum32()%uint32(len(wsLocks))]
}

// Bytes is the size of ws.img.
func (w *WorkingSet) Bytes() int64 { return int64(w.Pages) * PageSize }

// WorkingSet returns the snapshot's working set, or errdefs.ErrNotFound if
// none has been recorded. To read ws.img too, use OpenWorkingSet.
func (s *Snapshot) WorkingSet() (*WorkingSet, error) {
	l := wsLock(s.Dir)
	l.RLock()
	defer l.RUnlock()
	return s.readWorkingSet()
}

// OpenWorkingSet returns the snapshot's working set with ws.img opened
// (Image) and of the size ws.json gives, the two read as one: a working set
// rewritten meanwhile does not mix with this one. The caller closes it.
// errdefs.ErrNotFound if none has been recorded; a missing or truncated
// ws.img is errdefs.ErrCorrupt.
func (s *Snapshot) OpenWorkingSet() (*WorkingSet, error) {
	return s.ReopenWorkingSet(nil)
}

// ReopenWorkingSet is OpenWorkingSet for a caller that holds kept, a
// working set of this snapshot opened earlier (nil: none), and hands it
// over: if ws.json is still the file kept was read from, kept comes back
// as it is, ws.img still open; otherwise kept is closed and the current
// working set opened. The check is the stat of ws.json that
// OpenWorkingSet makes anyway, so a restore that keeps its working set
// for the next one (restore's sessions opened ahead) skips opening,
// checking and closing ws.img: system calls that cost a small function's
// start tens of microseconds on a VM (docs/restore.md, "Keeping ws.img
// open"). ws.img is never rewritten in place, and a new one is renamed
// into place before its ws.json, under the lock taken here, so a kept
// image still matches a ws.json that has not changed.
func (s *Snapshot) ReopenWorkingSet(kept *WorkingSet) (*WorkingSet, error) {
	l := wsLock(s.Dir)
	l.RLock()
	defer l.RUnlock()
	if kept != nil && kept.img != nil && kept.key != (wsKey{}) {
		if fi, err := os.Stat(s.Path(WSMetaFile)); err == nil {
			if key, ok := keyOf(s.Dir, fi); ok && key == kept.key {
				return kept, nil
			}
		}
	}
	_ = kept.Close()
	ws, err := s.readWorkingSet()
	if err != nil {
		return nil, err
	}
	f, err := openFile(s.Path(WSImageFile))
	if err != nil {
		return nil, fmt.Errorf("open working set: %v: %w", err, errdefs.ErrCorrupt)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != ws.Bytes() {
		f.Close()
		return nil, fmt.Errorf("working set %s: ws.img has the wrong size (truncated?): %w", s.Dir, errdefs.ErrCorrupt)
	}
	ws.img = f
	return ws, nil
}

// openFile opens path read-only, as os.Open does minus its attempt to add
// the file to Go's network poller, which a regular file refuses after four
// system calls (two fcntl pairs around an epoll_ctl). On a restore's start
// those cost a few microseconds each on a VM; the file is only ever read
// with pread and O_DIRECT reads, which need no poller.
func openFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
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
	order := make([]byte, 4*len(trace))
	for i, p := range trace {
		binary.LittleEndian.PutUint32(order[4*i:], uint32(p))
	}
	mj, err := json.Marshal(ws)
	if err != nil {
		return nil, err
	}
	files := []*atomicfile.File{out}
	for i, data := range [][]byte{order, mj} {
		f, err := atomicfile.Create(s.Dir, atomicfile.TempPattern([]string{WSTraceFile, WSMetaFile}[i]), FileMode)
		if err != nil {
			return nil, fmt.Errorf("working set: %w", err)
		}
		defer f.Abort()
		if _, err := f.Write(data); err != nil {
			return nil, fmt.Errorf("working set: %w", err)
		}
		files = append(files, f)
	}
	// Everything is written and synced before the lock; under it the three
	// files are only renamed, so readers wait microseconds, and never see
	// ws.json without its ws.img.
	for _, f := range files {
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("working set: %w", err)
		}
		f.NoSync = true
	}
	if err := s.commitWorkingSet(files); err != nil {
		return nil, err
	}
	if err := atomicfile.SyncDir(s.Dir); err != nil {
		return nil, fmt.Errorf("working set: %w", err)
	}
	return ws, nil
}

// commitWorkingSet renames ws.img, ws.trace and ws.json (files, in that
// order) into place under the working set's write lock.
func (s *Snapshot) commitWorkingSet(files []*atomicfile.File) error {
	l := wsLock(s.Dir)
	l.Lock()
	defer l.Unlock()
	for i, name := range []string{WSImageFile, WSTraceFile, WSMetaFile} {
		if err := files[i].Commit(s.Path(name)); err != nil {
			return fmt.Errorf("working set: %w", err)
		}
	}
	return nil
}

// RemoveWorkingSet deletes the working set so the next restore re-records.
func (s *Snapshot) RemoveWorkingSet() error {
	l := wsLock(s.Dir)
	l.Lock()
	defer l.Unlock()
	err := os.Remove(s.Path(WSMetaFile))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
