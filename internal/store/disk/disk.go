// Package disk is a store.Backend on a local directory, bounded in bytes
// with least-recently-used eviction: the worker-local disk tier of a tiered
// store. It survives restarts: Open rebuilds its index from the directory,
// ordering entries by their last use, which Get records in the file's
// access time. Shared is the same directory as another process sees it
// (the pager child, reading and adding to the worker's disk cache); the
// directory layout is this package's alone.
//
// Writes are atomic (temporary file, then rename), so a crash never leaves a
// half-written object under its name. Without Options.Sync a crash may
// still lose recent writes; that is fine for a cache, whose entries are
// authenticated by the layer above and refetched when damaged.
package disk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/lru"
	"github.com/thaw-run/thaw/internal/store"
)

// Options configures a disk Backend.
type Options struct {
	// Capacity bounds the bytes of object data kept; <= 0 means unbounded.
	Capacity int64
	// Sync makes every Put fsync the file and its directory before
	// returning, for data that has no other copy.
	Sync bool
}

// Backend is a directory of objects with an in-memory LRU index.
type Backend struct {
	root string
	opts Options

	mu      sync.Mutex
	entries *lru.Cache[string, *entry] // evicting an entry removes its file
}

type entry struct {
	size    int64
	modTime time.Time
}

var _ store.Backend = (*Backend)(nil)

// Open opens (creating if needed) the cache in dir and indexes the objects
// already there, evicting the least recently used ones if they exceed the
// capacity (it may have shrunk since the last run). Leftover temporary
// files of an interrupted Put are removed.
func Open(dir string, opts Options) (*Backend, error) {
	b := &Backend{root: dir, opts: opts}
	b.entries = lru.New(opts.Capacity, func(e *entry) int64 { return e.size },
		func(name string, _ *entry) { _ = os.Remove(b.path(name)) })
	for _, d := range []string{b.objDir(), b.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("disk: %w", err)
		}
	}
	if err := os.RemoveAll(b.tmpDir()); err != nil {
		return nil, fmt.Errorf("disk: clearing temporary files: %w", err)
	}
	if err := os.MkdirAll(b.tmpDir(), 0o700); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	type found struct {
		name string
		entry
		atime time.Time
	}
	var all []found
	err := walk(dir, func(name string, fi fs.FileInfo) error {
		atime := fi.ModTime()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			atime = time.Unix(st.Atim.Sec, st.Atim.Nsec)
		}
		all = append(all, found{name, entry{fi.Size(), fi.ModTime()}, atime})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("disk: indexing %s: %w", dir, err)
	}
	// Oldest use first, each added as the most recent: what is over the
	// capacity (it may have shrunk) is evicted oldest first.
	sort.Slice(all, func(i, j int) bool { return all[i].atime.Before(all[j].atime) })
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range all {
		if !b.entries.Add(f.name, &f.entry) {
			_ = os.Remove(b.path(f.name)) // larger than the whole capacity
		}
	}
	return b, nil
}

func (b *Backend) objDir() string          { return objDir(b.root) }
func (b *Backend) tmpDir() string          { return tmpDir(b.root) }
func (b *Backend) path(name string) string { return objectPath(b.root, name) }

// The directory layout, shared by Backend and Shared: objects/ holds the
// objects, tmp/ the temporary files of writes in progress.
func objDir(root string) string { return filepath.Join(root, "objects") }
func tmpDir(root string) string { return filepath.Join(root, "tmp") }

// objectPath maps a valid object name to its file under root. Names are
// flattened ('/' becomes '~', which ValidName never allows) and spread over
// 256 directories by their last two characters, hex digits for chunk names.
func objectPath(root, name string) string {
	esc := strings.ReplaceAll(name, "/", "~")
	fan := "00"
	if len(esc) >= 2 {
		fan = esc[len(esc)-2:]
	}
	return filepath.Join(objDir(root), fan, esc)
}

func unescape(file string) string { return strings.ReplaceAll(file, "~", "/") }

// walk calls fn for every object file under root, skipping files whose
// names are not object names (not ours) and files removed while it walks
// (another process sharing the directory may delete one).
func walk(root string, fn func(name string, fi fs.FileInfo) error) error {
	return filepath.WalkDir(objDir(root), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := unescape(d.Name())
		if store.ValidName(name) != nil {
			return nil // not ours; leave it alone
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(name, fi)
	})
}

// Get implements store.Backend and records the use in the LRU order, both
// in memory and in the file's access time (so it survives a restart).
//
// An object another process put into the directory since Open (the pager
// child fills the worker's disk cache with atomic renames) is adopted on its
// first Get: indexed, counted against the capacity and evicted like any other.
func (b *Backend) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	e, ok := b.entries.Get(name)
	b.mu.Unlock()
	if !ok {
		return b.adopt(name)
	}
	p := b.path(name)
	data, err := atomicfile.ReadFile(p, store.MaxObjectSize)
	if errors.Is(err, fs.ErrNotExist) {
		b.forget(name, e)
		return nil, fmt.Errorf("disk: %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("disk: %s: %w", name, err)
	}
	now := time.Now()
	_ = os.Chtimes(p, now, time.Time{}) // best effort: recency only
	return data, nil
}

// adopt reads an object that is in the directory but not in the index, and
// indexes it.
func (b *Backend) adopt(name string) ([]byte, error) {
	if store.ValidName(name) != nil {
		return nil, fmt.Errorf("disk: %s: %w", name, errdefs.ErrNotFound)
	}
	data, err := atomicfile.ReadFile(b.path(name), store.MaxObjectSize)
	if err != nil {
		// Missing (the usual miss) or unreadable: either way not here.
		return nil, fmt.Errorf("disk: %s: %w", name, errdefs.ErrNotFound)
	}
	size := int64(len(data))
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.entries.Peek(name); !ok {
		// Not indexed meanwhile: index it, unless too large to keep.
		b.entries.Add(name, &entry{size: size, modTime: time.Now()})
	}
	return data, nil
}

// forget drops name from the index if e is still its entry (the file went
// missing under us, e.g. removed by an operator).
func (b *Backend) forget(name string, e *entry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.entries.Peek(name); ok && cur == e {
		b.entries.Remove(name)
	}
}

// Put implements store.Backend. It evicts least recently used objects until
// data fits; when the file system is full it evicts more and retries once,
// so a full disk costs cache capacity, never a failed read. An object larger
// than the whole capacity is refused with errdefs.ErrTooLarge.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	size := int64(len(data))
	if b.opts.Capacity > 0 && size > b.opts.Capacity {
		return fmt.Errorf("disk: %s: %d bytes exceed capacity %d: %w", name, size, b.opts.Capacity, errdefs.ErrTooLarge)
	}
	tmp, err := b.writeTemp(data)
	if errors.Is(err, syscall.ENOSPC) {
		b.mu.Lock()
		b.entries.EvictFor(b.entries.Used()/2 + size) // make real room, not one object's worth
		b.mu.Unlock()
		tmp, err = b.writeTemp(data)
	}
	if err != nil {
		return fmt.Errorf("disk: %s: %w", name, err)
	}
	defer tmp.Abort() // no-op after Commit

	p := b.path(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries.Remove(name) // the rename replaces its file
	b.entries.EvictFor(size)
	if err := commit(tmp, p); err != nil {
		return fmt.Errorf("disk: %s: %w", name, err)
	}
	b.entries.Add(name, &entry{size: size, modTime: time.Now()})
	return nil
}

// writeTemp writes data to a temporary file, synced with Options.Sync;
// commit renames it into place (and syncs the directory with Options.Sync).
func (b *Backend) writeTemp(data []byte) (*atomicfile.File, error) {
	return writeTemp(b.root, data, b.opts.Sync)
}

// writeTemp writes data to a temporary file in root's tmp/, synced if sync
// is set.
func writeTemp(root string, data []byte, sync bool) (*atomicfile.File, error) {
	f, err := atomicfile.Create(tmpDir(root), "put-*", 0o600)
	if err != nil {
		return nil, err
	}
	f.NoSync = !sync
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return nil, err
	}
	if !f.NoSync {
		// Sync now, not at Commit: a full disk (ENOSPC) may show only
		// on the sync, and Put retries that after evicting.
		if err := f.Sync(); err != nil {
			f.Abort()
			return nil, err
		}
	}
	return f, nil
}

// commit renames a temporary file written by writeTemp to path.
func commit(f *atomicfile.File, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return f.Commit(path)
}

// Delete implements store.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries.Remove(name)
	if err := os.Remove(b.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: %s: %w", name, err)
	}
	return nil
}

// Stat implements store.Backend; it does not count as a use.
func (b *Backend) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return store.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries.Peek(name)
	if !ok {
		return store.ObjectInfo{}, fmt.Errorf("disk: %s: %w", name, errdefs.ErrNotFound)
	}
	return store.ObjectInfo{Name: name, Size: e.size, ModTime: e.modTime}, nil
}

// List implements store.Backend from the index; fn runs without the lock.
func (b *Backend) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	b.mu.Lock()
	var infos []store.ObjectInfo
	for name, e := range b.entries.All() {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, store.ObjectInfo{Name: name, Size: e.size, ModTime: e.modTime})
		}
	}
	b.mu.Unlock()
	return store.Visit(ctx, infos, fn)
}

// Contains reports whether the cache holds name, without reading it or
// counting a use: what a worker asks of every chunk of a snapshot to
// publish how much of it is cached. An object another process put into
// the directory since Open (the pager child's fills) is found by its
// file and indexed, as Get would adopt it.
func (b *Backend) Contains(name string) bool {
	b.mu.Lock()
	_, ok := b.entries.Peek(name)
	b.mu.Unlock()
	if ok {
		return true
	}
	if store.ValidName(name) != nil {
		return false
	}
	fi, err := os.Stat(b.path(name))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.entries.Peek(name); !ok {
		b.entries.Add(name, &entry{size: fi.Size(), modTime: fi.ModTime()})
	}
	return true
}

// Used returns the bytes of object data held.
func (b *Backend) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entries.Used()
}

// Path returns the file holding name. It exists for fault-injection tests
// that damage a cached object in place.
func (b *Backend) Path(name string) string { return b.path(name) }
