package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Snapshot is an opened snapshot: its authenticated manifest, giving random
// access to its files. It is safe for concurrent use.
type Snapshot struct {
	s *Store
	m *Manifest
}

// Open reads and authenticates the manifest of snapshot. Errors:
// errdefs.ErrNotFound if there is no such snapshot, errdefs.ErrUnauthorized
// if it was written with another key, errdefs.ErrCorrupt if it fails
// authentication, errdefs.ErrUnavailable if no tier holding it can be reached.
func (s *Store) Open(ctx context.Context, snapshot string) (*Snapshot, error) {
	return s.open(ctx, s.be, snapshot)
}

// OpenLatest is Open reading the manifest from the origin store, past any
// cache in front of it: a snapshot published again under the same id (with
// its working set) replaces its manifest, and a cache may still hold the
// one from before.
func (s *Store) OpenLatest(ctx context.Context, snapshot string) (*Snapshot, error) {
	return s.open(ctx, s.origin(), snapshot)
}

// open reads snapshot's manifest from be.
func (s *Store) open(ctx context.Context, be Backend, snapshot string) (*Snapshot, error) {
	if err := ValidSnapshotID(snapshot); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	m, err := s.loadManifest(ctx, be, snapshot)
	if err != nil {
		return nil, err
	}
	return &Snapshot{s: s, m: m}, nil
}

// ID returns the snapshot id.
func (sn *Snapshot) ID() string { return sn.m.Snapshot }

// Manifest returns the decoded manifest. Callers must not modify it.
func (sn *Snapshot) Manifest() *Manifest { return sn.m }

// FileInfo summarises one file of a snapshot.
type FileInfo struct {
	Name       string
	Size       int64
	Chunks     int
	ZeroChunks int
}

// Files lists the snapshot's files in manifest order.
func (sn *Snapshot) Files() []FileInfo {
	out := make([]FileInfo, 0, len(sn.m.Files))
	for _, f := range sn.m.Files {
		fi := FileInfo{Name: f.Name, Size: f.Size, Chunks: len(f.Chunks)}
		for _, c := range f.Chunks {
			if c.Zero {
				fi.ZeroChunks++
			}
		}
		out = append(out, fi)
	}
	return out
}

func (sn *Snapshot) entry(name string) (*FileEntry, error) {
	for i := range sn.m.Files {
		if sn.m.Files[i].Name == name {
			return &sn.m.Files[i], nil
		}
	}
	return nil, fmt.Errorf("store: snapshot %s has no file %q: %w", sn.m.Snapshot, name, errdefs.ErrNotFound)
}

// ChunkObject is a stored chunk of a snapshot's file: where it is in the
// file and the backend object that holds it.
type ChunkObject struct {
	// Off is the chunk's offset in the file; Size its plaintext size.
	Off  int64
	Size int
	// Name is the backend object (a cache tier holds it under the same
	// name).
	Name string
}

// ChunkObjects lists the stored chunks of file, in file order; zero
// chunks are not stored and not listed. It reads nothing: a caller asks a
// cache tier which of them it holds (how much of a snapshot a worker has
// cached).
func (sn *Snapshot) ChunkObjects(file string) ([]ChunkObject, error) {
	e, err := sn.entry(file)
	if err != nil {
		return nil, err
	}
	out := make([]ChunkObject, 0, len(e.Chunks))
	for i, c := range e.Chunks {
		if !c.Zero {
			out = append(out, ChunkObject{Off: int64(i) * int64(e.ChunkSize), Size: c.Size, Name: chunkName(sn.s.keys.tenant, c.ID)})
		}
	}
	return out, nil
}

// File returns random access to one file of the snapshot.
func (sn *Snapshot) File(name string) (*File, error) {
	e, err := sn.entry(name)
	if err != nil {
		return nil, err
	}
	return &File{sn: sn, e: e}, nil
}

// File reads one file of a snapshot by chunks: a read fetches, authenticates
// and decrypts only the chunks covering its range (zero chunks cost no I/O)
// and keeps decrypted chunks in the Store's bounded cache.
type File struct {
	sn *Snapshot
	e  *FileEntry
}

var _ io.ReaderAt = (*File)(nil)

// Size returns the file's size.
func (f *File) Size() int64 { return f.e.Size }

// ReadAt implements io.ReaderAt with a background context; see
// ReadAtContext.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	return f.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext reads len(p) bytes at off. As io.ReaderAt, it returns
// io.EOF with fewer bytes only at the end of the file. A chunk that fails
// authentication in every tier is errdefs.ErrCorrupt and its bytes are
// never returned.
func (f *File) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("store: negative offset %d: %w", off, errdefs.ErrInvalid)
	}
	cs := int64(f.e.ChunkSize)
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= f.e.Size {
			return n, io.EOF
		}
		idx := pos / cs
		ref := &f.e.Chunks[idx]
		within := pos - idx*cs
		want := min(int64(len(p)-n), int64(ref.Size)-within)
		if ref.Zero {
			clear(p[n : n+int(want)])
			f.sn.s.counters.zeroReads.Add(1)
		} else {
			plain, err := f.sn.s.chunk(ctx, ref, want)
			if err != nil {
				return n, fmt.Errorf("store: %s/%s at %d: %w", f.sn.m.Snapshot, f.e.Name, pos, err)
			}
			copy(p[n:n+int(want)], plain[within:])
		}
		n += int(want)
	}
	return n, nil
}

// Chunk returns the authenticated plaintext of the chunk of the file that
// starts at off (a multiple of the file's chunk size), fetching it if it is
// not cached; nil for a zero chunk. The slice is shared with the cache: the
// caller must not modify it. Readers that place a whole chunk somewhere
// (a restore installing a working set) use it to copy the chunk once.
func (f *File) Chunk(ctx context.Context, off int64) ([]byte, error) {
	cs := int64(f.e.ChunkSize)
	if off < 0 || off%cs != 0 || off >= f.e.Size {
		return nil, fmt.Errorf("store: chunk offset %d of %s: %w", off, f.e.Name, errdefs.ErrInvalid)
	}
	ref := &f.e.Chunks[off/cs]
	if ref.Zero {
		f.sn.s.counters.zeroReads.Add(1)
		return nil, nil
	}
	plain, err := f.sn.s.chunk(ctx, ref, int64(ref.Size))
	if err != nil {
		return nil, fmt.Errorf("store: %s/%s at %d: %w", f.sn.m.Snapshot, f.e.Name, off, err)
	}
	return plain, nil
}

// chunk returns the plaintext of ref from the cache or the backend. use is
// how many of its bytes the caller reads: what a hit in the decrypted-chunk
// cache adds to the context's Tally (WithTally).
func (s *Store) chunk(ctx context.Context, ref *ChunkRef, use int64) ([]byte, error) {
	for {
		plain, hit, err := s.cache.get(ref.ID, func() ([]byte, error) { return s.fetch(ctx, s.be, ref) })
		if hit && err == nil {
			s.counters.cacheHits.Add(1)
			if t := TallyOf(ctx); t != nil {
				// What the reader takes of it: a lazy restore reads one
				// page of a chunk per fault, and the chunk's fetch was
				// counted whole.
				t.Add(TierCache, min(int64(len(plain)), use))
			}
		}
		// A load shared with another caller (a prefetch) may have been
		// cancelled by that caller; ours is still wanted, so load again.
		if hit && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		return plain, err
	}
}

// fetch reads one chunk object from be and authenticates it. With a
// tiered backend a damaged copy in a cache tier is dropped and the next
// tier tried; only when no copy authenticates is the error returned.
func (s *Store) fetch(ctx context.Context, be Backend, ref *ChunkRef) ([]byte, error) {
	name := chunkName(s.keys.tenant, ref.ID)
	var plain []byte
	check := func(obj []byte) error {
		p, err := openChunk(ref.ID, ref.Key, obj)
		if err == nil && len(p) != ref.Size {
			err = fmt.Errorf("chunk %s: %d bytes, manifest says %d: %w", ref.ID, len(p), ref.Size, errdefs.ErrCorrupt)
		}
		plain = p
		return err
	}
	if err := getChecked(ctx, be, name, check); err != nil {
		if errors.Is(err, errdefs.ErrCorrupt) {
			s.counters.corrupt.Add(1)
		}
		return nil, err
	}
	s.counters.fetched.Add(1)
	s.counters.fetchedBytes.Add(int64(len(plain)))
	if _, tiered := be.(TierStatser); !tiered {
		// A backend without tiers is the object store itself; a tiered
		// one counts the tier that answered (WithTally).
		if t := TallyOf(ctx); t != nil {
			t.Add(TierRemote, int64(len(plain)))
		}
	}
	return plain, nil
}

// Range is a byte range of a file.
type Range struct {
	Off, Len int64
}

// Prefetch fetches the chunks covering ranges of file ahead of need, up to
// Config.Concurrency at a time; REAP and bulk restores call it with the
// working set. Fetched chunks land in the decrypted-chunk cache and, with
// a tiered backend, in its upper tiers; if the ranges exceed the decrypted
// cache, later reads still find the chunks in the memory tier and only pay
// decryption. Zero chunks and cached chunks are skipped. The first error
// stops the prefetch and is returned.
func (sn *Snapshot) Prefetch(ctx context.Context, file string, ranges []Range) error {
	e, err := sn.entry(file)
	if err != nil {
		return err
	}
	cs := int64(e.ChunkSize)
	want := map[int64]bool{}
	for _, r := range ranges {
		if r.Off < 0 || r.Len < 0 {
			return fmt.Errorf("store: prefetch range %+v: %w", r, errdefs.ErrInvalid)
		}
		end := min(r.Off+r.Len, e.Size)
		for i := r.Off / cs; i*cs < end; i++ {
			if c := &e.Chunks[i]; !c.Zero && !sn.s.cache.contains(c.ID) {
				want[i] = true
			}
		}
	}
	idx := make([]int64, 0, len(want))
	for i := range want {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	return parallel(ctx, sn.s.cfg.Concurrency, idx, func(ctx context.Context, i int64) error {
		if _, err := sn.s.chunk(ctx, &e.Chunks[i], 0); err != nil {
			return fmt.Errorf("store: prefetch %s/%s chunk %d: %w", sn.m.Snapshot, file, i, err)
		}
		return nil
	})
}

// ForEachChunk calls fn for the byte range [off, off+size) of every
// non-zero chunk of file, from up to conc goroutines at once, so that
// chunk fetches (and fn's reads of them through the store) overlap. The
// first error stops the walk and is returned; a panic in fn is turned into
// an errdefs.ErrCorrupt error of the walk (fn places data by bounds read
// from files).
func (sn *Snapshot) ForEachChunk(ctx context.Context, file string, conc int, fn func(ctx context.Context, off, size int64) error) error {
	e, err := sn.entry(file)
	if err != nil {
		return err
	}
	var idx []int64
	for i := range e.Chunks {
		if !e.Chunks[i].Zero {
			idx = append(idx, int64(i))
		}
	}
	cs := int64(e.ChunkSize)
	return parallel(ctx, max(conc, 1), idx, func(ctx context.Context, i int64) (err error) {
		off := i * cs
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("store snapshot %s: %s at %d: %v: %w", sn.m.Snapshot, file, off, p, errdefs.ErrCorrupt)
			}
		}()
		return fn(ctx, off, int64(e.Chunks[i].Size))
	})
}

// parallel calls fn for each of idx, in order, from up to conc goroutines
// at once. The first error cancels the context of the calls still running,
// stops starting new ones and is returned; else ctx's error, if it ended.
func parallel(ctx context.Context, conc int, idx []int64, fn func(ctx context.Context, i int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, conc)
	for _, i := range idx {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
