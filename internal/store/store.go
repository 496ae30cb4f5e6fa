package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thaw-run/thaw/internal/crashpoint"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// DefaultChunkSize is the chunk size when Config.ChunkSize is zero: 512 KiB,
// as in AWS Lambda's container and SnapStart store (Brooker et al., ATC'23).
// Large enough that a restore needs few requests, small enough that a
// working set of scattered pages does not drag in much unused data.
const DefaultChunkSize = 512 << 10

// Config configures a Store. Zero fields take the documented defaults.
type Config struct {
	// Backend holds the objects; usually a tiered backend.
	Backend Backend
	// Keys are the tenant's keys (NewKeys).
	Keys *Keys
	// ChunkSize for new snapshots (default DefaultChunkSize). Snapshots
	// record their own chunk size, so it may change between snapshots.
	ChunkSize int
	// CacheBytes bounds the in-memory cache of decrypted chunks (default
	// 32 MiB; negative disables it).
	CacheBytes int64
	// Concurrency bounds parallel chunk uploads and prefetches (default 8).
	Concurrency int
	// GCGrace is the upload lease (default 1h): GC never deletes a chunk
	// written less than GCGrace ago, and Put refuses to publish a manifest
	// more than GCGrace/2 after it started, so that every chunk a new
	// manifest references is either young or referenced already.
	GCGrace time.Duration
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
}

// Store is a tenant's view of the chunk store. It is safe for concurrent
// use.
type Store struct {
	cfg   Config
	be    Backend
	keys  *Keys
	cache *chunkCache

	counters counters
}

// New validates cfg and returns a Store.
func New(cfg Config) (*Store, error) {
	if cfg.Backend == nil || cfg.Keys == nil {
		return nil, fmt.Errorf("store: backend and keys are required: %w", errdefs.ErrInvalid)
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if err := ValidChunkSize(cfg.ChunkSize); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = 32 << 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.GCGrace <= 0 {
		cfg.GCGrace = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, be: cfg.Backend, keys: cfg.Keys, cache: newChunkCache(cfg.CacheBytes)}, nil
}

// FileSource is a file to put into a snapshot.
type FileSource struct {
	// Name identifies the file within the snapshot ("mem.img", "ws.img").
	Name string
	Size int64
	R    io.ReaderAt
	// ChunkSize cuts this file into chunks of another size than
	// Config.ChunkSize (0: the store's). Files read whole, such as a
	// working set, take fewer requests with larger chunks.
	ChunkSize int
}

// FileSourceOf describes an open file as a FileSource named name.
func FileSourceOf(name string, f *os.File) (FileSource, error) {
	fi, err := f.Stat()
	if err != nil {
		return FileSource{}, fmt.Errorf("store: %w", err)
	}
	return FileSource{Name: name, Size: fi.Size(), R: f}, nil
}

// PutResult says what Put did.
type PutResult struct {
	Snapshot string
	// Chunks counts every chunk of every file; ZeroChunks of them are all
	// zero and not stored.
	Chunks, ZeroChunks int
	// NewChunks were uploaded; ReusedChunks were already stored (dedup).
	NewChunks, ReusedChunks int
	// LogicalBytes is the total file size; UploadedBytes the object bytes
	// written (including the manifest).
	LogicalBytes, UploadedBytes int64
}

// ValidSnapshotID reports whether id can name a snapshot: one name segment
// of letters, digits, '.', '-' and '_' (no slashes).
func ValidSnapshotID(id string) error {
	if id == "" || len(id) > 200 || id == "." || id == ".." {
		return fmt.Errorf("snapshot id %q: %w", id, errdefs.ErrInvalid)
	}
	if err := validSegment(id); err != nil {
		return fmt.Errorf("snapshot id %q: %w", id, err)
	}
	return nil
}

// Put cuts files into chunks, uploads the chunks the store does not hold
// yet (in parallel), and then publishes the snapshot's manifest; the
// manifest is written last, so a visible manifest always has its chunks.
// Putting an existing snapshot id replaces its manifest.
//
// A file is read through its ReaderAt chunk by chunk, so a sparse 256 MiB
// memory image costs reading its holes (which the kernel serves as zeros)
// but stores only the chunks that hold data. Each file starts at a chunk
// boundary: a working-set file written contiguously spans
// ceil(size/ChunkSize) chunks and is fetched with that many requests.
func (s *Store) Put(ctx context.Context, snapshot string, files []FileSource) (*PutResult, error) {
	if err := ValidSnapshotID(snapshot); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	start := s.cfg.Now()
	m := &Manifest{Tenant: s.keys.tenant, Snapshot: snapshot, Created: start, ChunkSize: s.cfg.ChunkSize}
	res := &PutResult{Snapshot: snapshot}
	names := map[string]bool{}
	for _, f := range files {
		if f.Name == "" || len(f.Name) > maxNameLen || names[f.Name] {
			return nil, fmt.Errorf("store: file name %q empty, too long or repeated: %w", f.Name, errdefs.ErrInvalid)
		}
		if f.Size < 0 || f.Size > maxFileSize {
			return nil, fmt.Errorf("store: file %s: size %d: %w", f.Name, f.Size, errdefs.ErrTooLarge)
		}
		cs := f.ChunkSize
		if cs == 0 {
			cs = s.cfg.ChunkSize
		}
		if err := ValidChunkSize(cs); err != nil {
			return nil, fmt.Errorf("store: file %s: %w", f.Name, err)
		}
		names[f.Name] = true
		n := (f.Size + int64(cs) - 1) / int64(cs)
		m.Files = append(m.Files, FileEntry{Name: f.Name, Size: f.Size, ChunkSize: cs, Chunks: make([]ChunkRef, n)})
		res.LogicalBytes += f.Size
	}
	if len(m.Files) > maxFiles {
		return nil, fmt.Errorf("store: %d files: %w", len(m.Files), errdefs.ErrTooLarge)
	}

	type job struct{ file, chunk int }
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		firstErr error
		done     = map[ChunkID]bool{} // dedup within this Put
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for j := range jobs {
				f := files[j.file]
				cs := int64(m.Files[j.file].ChunkSize)
				off := int64(j.chunk) * cs
				size := min(cs, f.Size-off)
				if int64(cap(buf)) < size {
					buf = make([]byte, size)
				}
				p := buf[:size]
				if _, err := f.R.ReadAt(p, off); err != nil && !(errors.Is(err, io.EOF) && off+size == f.Size) {
					fail(fmt.Errorf("store: reading %s at %d: %w", f.Name, off, err))
					cancel()
					continue
				}
				ref, uploaded, err := s.putChunk(ctx, p, &mu, done, start)
				if err != nil {
					fail(err)
					cancel()
					continue
				}
				mu.Lock()
				m.Files[j.file].Chunks[j.chunk] = ref
				res.Chunks++
				switch {
				case ref.Zero:
					res.ZeroChunks++
				case uploaded > 0:
					res.NewChunks++
					res.UploadedBytes += uploaded
				default:
					res.ReusedChunks++
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for fi, f := range m.Files {
		for ci := range f.Chunks {
			select {
			case jobs <- job{fi, ci}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: put %s: %w", snapshot, err)
	}
	if elapsed := s.cfg.Now().Sub(start); elapsed > s.cfg.GCGrace/2 {
		// Chunks found in the store at the start may be collected by a GC
		// from now on; publishing would risk a manifest with holes.
		return nil, fmt.Errorf("store: put %s took %v, past the upload lease %v; retry (chunks are deduplicated): %w",
			snapshot, elapsed, s.cfg.GCGrace/2, errdefs.ErrTimeout)
	}
	obj, err := s.keys.encodeManifest(m)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	crashpoint.Hit(crashpoint.StoreChunksWritten)
	if err := s.be.Put(ctx, manifestName(s.keys.tenant, snapshot), obj); err != nil {
		return nil, fmt.Errorf("store: writing manifest %s: %w", snapshot, err)
	}
	res.UploadedBytes += int64(len(obj))
	return res, nil
}

var zeroChunk = make([]byte, 64<<10)

func isZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroChunk))
		if string(p[:n]) != string(zeroChunk[:n]) { // compiles to memequal, no allocation
			return false
		}
		p = p[n:]
	}
	return true
}

// putChunk stores one chunk unless it is zero or already stored. A chunk
// already stored is reused only if it was written within the last half
// lease; an older copy is rewritten, which renews its lease, because a GC
// running now may already have judged it unreferenced.
func (s *Store) putChunk(ctx context.Context, p []byte, mu *sync.Mutex, done map[ChunkID]bool, start time.Time) (ChunkRef, int64, error) {
	if isZero(p) {
		return ChunkRef{Size: len(p), Zero: true}, 0, nil
	}
	ref := ChunkRef{ID: s.keys.chunkID(p), Size: len(p)}
	key, err := s.keys.chunkKey(p)
	if err != nil {
		return ref, 0, err
	}
	ref.Key = key
	mu.Lock()
	dup := done[ref.ID]
	done[ref.ID] = true
	mu.Unlock()
	if dup {
		return ref, 0, nil
	}
	name := chunkName(s.keys.tenant, ref.ID)
	fi, err := s.be.Stat(ctx, name)
	if err == nil && fi.ModTime.After(start.Add(-s.cfg.GCGrace/2)) {
		return ref, 0, nil
	}
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) && !errors.Is(err, errdefs.ErrUnavailable) {
		return ref, 0, fmt.Errorf("store: stat %s: %w", name, err)
	}
	obj := sealChunk(ref.ID, key, p)
	if err := s.be.Put(ctx, name, obj); err != nil {
		return ref, 0, fmt.Errorf("store: writing chunk: %w", err)
	}
	return ref, int64(len(obj)), nil
}

// Snapshots lists the tenant's snapshot ids, sorted.
func (s *Store) Snapshots(ctx context.Context) ([]string, error) {
	prefix := "manifests/" + s.keys.tenant + "/"
	var ids []string
	err := s.be.List(ctx, prefix, func(fi ObjectInfo) error {
		ids = append(ids, strings.TrimPrefix(fi.Name, prefix))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing snapshots: %w", err)
	}
	sort.Strings(ids)
	return ids, nil
}

// Delete removes a snapshot's manifest. Its chunks are freed by the next GC
// that finds no other manifest referencing them.
func (s *Store) Delete(ctx context.Context, snapshot string) error {
	if err := ValidSnapshotID(snapshot); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := s.be.Delete(ctx, manifestName(s.keys.tenant, snapshot)); err != nil {
		return fmt.Errorf("store: deleting snapshot %s: %w", snapshot, err)
	}
	return nil
}

// loadManifest reads and decrypts a snapshot's manifest from be.
func (s *Store) loadManifest(ctx context.Context, be Backend, snapshot string) (*Manifest, error) {
	name := manifestName(s.keys.tenant, snapshot)
	var m *Manifest
	check := func(obj []byte) error {
		var err error
		m, err = s.keys.decodeManifest(snapshot, obj)
		return err
	}
	if err := getChecked(ctx, be, name, check); err != nil {
		return nil, fmt.Errorf("store: snapshot %s: %w", snapshot, err)
	}
	return m, nil
}

// counters are the Store's read counters.
type counters struct {
	cacheHits, zeroReads, fetched, fetchedBytes, corrupt atomic.Int64
}

// Counters are cumulative read counts of a Store, for metrics and for
// the restore benchmark.
type Counters struct {
	// CacheHits counts chunk reads served from the decrypted-chunk cache.
	CacheHits int64 `json:"cache_hits"`
	// ZeroReads counts reads of zero chunks, served without I/O.
	ZeroReads int64 `json:"zero_reads"`
	// Fetched counts chunks fetched from the backend and decrypted;
	// FetchedBytes their plaintext bytes. The backend's TierStats say
	// which tier served them.
	Fetched      int64 `json:"fetched"`
	FetchedBytes int64 `json:"fetched_bytes"`
	// Corrupt counts chunk reads that failed authentication everywhere.
	Corrupt int64 `json:"corrupt"`
}

// Counters returns the read counters.
func (s *Store) Counters() Counters {
	return Counters{
		CacheHits: s.counters.cacheHits.Load(), ZeroReads: s.counters.zeroReads.Load(),
		Fetched: s.counters.fetched.Load(), FetchedBytes: s.counters.fetchedBytes.Load(),
		Corrupt: s.counters.corrupt.Load(),
	}
}

// TierStats returns the backend's per-tier counters, if it keeps them.
func (s *Store) TierStats() []TierStat {
	if ts, ok := s.be.(TierStatser); ok {
		return ts.TierStats()
	}
	return nil
}
