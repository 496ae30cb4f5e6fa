package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync/atomic"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// Store is where snapshots that live only in the chunk store
// (internal/store) are restored from; Snapshot makes the Source of one.
// Every mode reads from the store:
//
//	eager  every non-zero chunk of memory.img is fetched, Concurrency at a
//	       time, and read straight into place
//	mmap   the store has no file to map: the image is first materialised
//	       into a sparse file under CacheDir (once per snapshot; later
//	       restores reuse it) and that file is mapped
//	lazy   the pager child opens the store itself (Config) and serves each
//	       fault from the chunk holding the page
//	reap   ws.img's chunks are fetched in parallel and each chunk's pages
//	       installed with UFFDIO_COPY as it arrives; other pages are lazy
//	bulk   ws.img's chunks are fetched in parallel and each is copied
//	       straight into its pages' places before userfaultfd is
//	       registered; other pages are lazy
//
// Every chunk is authenticated by the store before any byte of it reaches
// the region, so a tampered chunk fails the restore with errdefs.ErrCorrupt
// (counted by Restorer.CorruptRestores) and the caller falls back to a cold
// start. pages.crc is not read (except for mmap, whose materialised file
// the store no longer vouches for): the store's authentication is the
// stronger check. In lazy paging a tampered or unavailable chunk is
// detected by the pager, which serves a zero page instead of installing it
// (counted in the session's Errors and Failures); the owner must discard
// that instance.
type Store struct {
	// Config names the store the snapshots come from; the pager child
	// opens it from this description (stack.OpenReader).
	Config stack.Config
	// CacheDir holds images materialised for mmap restores.
	CacheDir string
	// Concurrency bounds parallel chunk fetches (default 8).
	Concurrency int
}

// FetchConcurrency is Concurrency, or its default.
func (s *Store) FetchConcurrency() int {
	if s.Concurrency > 0 {
		return s.Concurrency
	}
	return 8
}

// Snapshot returns the Source of sn, a snapshot of s opened from the store
// alone.
func (s *Store) Snapshot(sn *storesnap.Snapshot) Source { return stored{st: s, sn: sn} }

// SnapshotHeld is Snapshot for a snapshot whose chunks holders (cluster
// workers) are likely to have cached: the pager asks them for the chunks
// of faults (pager.StoreParams.Holders). Reads in this process name them
// through their context (store.WithHolders).
func (s *Store) SnapshotHeld(sn *storesnap.Snapshot, holders []string) Source {
	return stored{st: s, sn: sn, holders: holders}
}

type stored struct {
	st      *Store
	sn      *storesnap.Snapshot
	holders []string
}

var _ Source = stored{}

func (s stored) String() string            { return "store snapshot " + s.sn.ID }
func (s stored) Meta() *snapshot.Meta      { return &s.sn.Meta }
func (s stored) Local() *snapshot.Snapshot { return nil }

func (s stored) workingSet(kept *snapshot.WorkingSet) (*snapshot.WorkingSet, error) {
	_ = kept.Close() // the store's working set is held by s.sn
	if s.sn.WS == nil {
		return nil, fmt.Errorf("no working set recorded: %w", errdefs.ErrNotFound)
	}
	return s.sn.WS, nil
}

// openImage lists memory.img's non-zero chunks, which eager reads
// Concurrency at a time so that chunk fetches overlap.
func (s stored) openImage(context.Context) (imageReader, error) {
	var ext []snapshot.Extent
	m := s.sn.Snap.Manifest()
	for _, e := range m.Files {
		if e.Name != snapshot.ImageFile {
			continue
		}
		for i, c := range e.Chunks {
			if !c.Zero {
				ext = append(ext, snapshot.Extent{Off: int64(i) * int64(e.ChunkSize), Len: int64(c.Size)})
			}
		}
	}
	return &chunkImage{f: s.sn.Image, ext: ext, conc: s.st.FetchConcurrency()}, nil
}

// chunkImage reads memory.img through the store, which fetches and
// authenticates the chunk holding each range.
type chunkImage struct {
	f interface {
		ReadAtContext(context.Context, []byte, int64) (int, error)
	}
	ext  []snapshot.Extent
	conc int
}

func (i *chunkImage) extents() []snapshot.Extent { return i.ext }
func (i *chunkImage) fetchers() int              { return i.conc }
func (i *chunkImage) close()                     {}

// check has nothing to do: every chunk was authenticated as it was read.
func (i *chunkImage) check([]byte) error { return nil }

func (i *chunkImage) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := i.f.ReadAtContext(ctx, p, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// mapFile materialises the image from the store's authenticated chunks.
// Once on local disk the file is no more trustworthy than a local snapshot
// (anyone who can write the cache directory can change it, and a reused
// file is only checked for its size), so it is verified as a local image
// is: the pages the guest maps are checked against the snapshot's page
// checksums after every call (Memory.Verify). A bad page also removes the
// file, so the next mmap restore materialises it afresh.
func (s stored) mapFile(ctx context.Context) (mapping, error) {
	if s.st.CacheDir == "" {
		return mapping{}, fmt.Errorf("mmap from the store needs a cache directory to materialise the image in: %w", errdefs.ErrInvalid)
	}
	checked, err := s.sn.Checked(ctx, s.st.CacheDir)
	if err != nil {
		return mapping{}, err
	}
	path, written, err := s.sn.Materialise(ctx, s.st.CacheDir, s.st.FetchConcurrency())
	if err != nil {
		return mapping{written: written}, err
	}
	return mapping{path: path, check: checked, written: written, onBad: func() { _ = os.Remove(path) }}, nil
}

// pagerSource has the pager open the store and serve faults from the
// chunks of memory.img.
func (s stored) pagerSource(*Memory) (pager.SourceSpec, error) {
	return pager.StoreSource(pager.StoreParams{Store: s.st.Config.JSON(), Snapshot: s.sn.ID, File: snapshot.ImageFile, Holders: s.holders})
}

// eachWS fetches every non-zero chunk of ws.img, Concurrency at a time, and
// hands over the pieces of working-set runs each holds as soon as it has
// arrived (authenticated), so placing overlaps fetching the rest and no
// staging buffer is needed. A zero chunk's pages are left to the pager
// (which serves them as zeros).
func (s stored) eachWS(ctx context.Context, _ *Restorer, ws *snapshot.WorkingSet, place func(dst int64, data []byte) error) (int64, error) {
	starts := runStarts(ws)
	var read atomic.Int64
	err := s.sn.Snap.ForEachChunk(ctx, snapshot.WSImageFile, s.st.FetchConcurrency(), func(ctx context.Context, off, size int64) error {
		plain, err := s.sn.WSImage.Chunk(ctx, off)
		if err != nil {
			return err
		}
		if int64(len(plain)) != size {
			return fmt.Errorf("working-set chunk at %d: %d bytes, want %d: %w", off, len(plain), size, errdefs.ErrCorrupt)
		}
		read.Add(size)
		return wsSegments(ws, starts, off, off+size, func(dst, lo, hi int64) error {
			return place(dst, plain[lo-off:hi-off])
		})
	})
	return read.Load(), err
}

// prefetchWS does nothing: the chunks are fetched by fillWS, through the
// store's tiers, each piece copied into place as it arrives.
func (s stored) prefetchWS(*Memory, *snapshot.WorkingSet) {}

// fillWS copies each piece of the working set straight into its place as
// its chunk arrives.
func (s stored) fillWS(ctx context.Context, m *Memory, ws *snapshot.WorkingSet, _ []bool) (int64, error) {
	mem := m.Region.Bytes()
	return s.eachWS(ctx, nil, ws, func(dst int64, data []byte) error {
		m.Region.Populate(uint64(dst), uint64(len(data)))
		copy(mem[dst:dst+int64(len(data))], data)
		return nil
	})
}

// wsSegments calls fn for each piece of a working-set run that lies in
// [off, end) of ws.img: the piece's offset in the image (dst) and its range
// [lo, hi) in ws.img. Chunk boundaries are page-aligned, so every piece is
// whole pages.
func wsSegments(ws *snapshot.WorkingSet, starts []int64, off, end int64, fn func(dst, lo, hi int64) error) error {
	i := max(sort.Search(len(starts), func(i int) bool { return starts[i] > off })-1, 0)
	for ; i < len(ws.Runs) && starts[i] < end; i++ {
		run := ws.Runs[i]
		lo, hi := max(starts[i], off), min(starts[i]+int64(run.Count)*snapshot.PageSize, end)
		if lo >= hi {
			continue
		}
		if err := fn(int64(run.Start)*snapshot.PageSize+(lo-starts[i]), lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// runStarts returns each run's offset in ws.img.
func runStarts(ws *snapshot.WorkingSet) []int64 {
	starts := make([]int64, len(ws.Runs))
	var pos int64
	for i, run := range ws.Runs {
		starts[i] = pos
		pos += int64(run.Count) * snapshot.PageSize
	}
	return starts
}
