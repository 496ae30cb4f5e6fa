package storesnap

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/store"
)

// cacheWriter is the worker's disk cache as a reader process (the pager
// child) sees it: it reads the disk backend's layout like readOnlyDir and
// adds the copies it had to fetch from the remote, so that the next pager
// process, and the worker, find them locally.
//
// Copies are added off the fault path by a few background writers, each
// with an atomic write (a temporary file in the cache's tmp/ directory, then
// a rename), so a concurrent reader sees a whole object or none, and two
// processes adding the same chunk write the same bytes. Only copies that
// passed authentication are added. The cache's capacity is the worker's to
// manage: its disk backend adopts these files on its first lookup of them
// and evicts them like its own, and indexes all of them when it reopens.
// Until then they are not counted, so a process adds at most budget bytes.
type cacheWriter struct {
	readOnlyDir
	budget  atomic.Int64 // bytes this process may still add
	pending atomic.Int64 // bytes queued or being written

	mu      sync.Mutex
	queue   []cacheFill
	writers int // goroutines writing, at most maxCacheWriters
	idle    sync.Cond

	written, dropped atomic.Int64
}

type cacheFill struct {
	name string
	data []byte
}

const (
	// maxCacheWriters bounds the goroutines writing copies.
	maxCacheWriters = 2
	// maxPendingCacheFill bounds the bytes waiting to be written; a copy
	// arriving past it is not added.
	maxPendingCacheFill = 64 << 20
)

func newCacheWriter(root string, budget int64) *cacheWriter {
	w := &cacheWriter{readOnlyDir: readOnlyDir{root}}
	w.idle.L = &w.mu
	w.budget.Store(budget)
	return w
}

// add queues an authenticated copy of name for writing, or drops it if too
// much is pending or the budget is spent. data must not be modified.
func (w *cacheWriter) add(name string, data []byte) {
	n := int64(len(data))
	if w.pending.Add(n) > maxPendingCacheFill {
		w.pending.Add(-n)
		w.dropped.Add(1)
		return
	}
	if w.budget.Add(-n) < 0 {
		w.budget.Add(n)
		w.pending.Add(-n)
		w.dropped.Add(1)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queue = append(w.queue, cacheFill{name, data})
	if w.writers < maxCacheWriters {
		w.writers++
		go w.run()
	}
}

func (w *cacheWriter) run() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queue) > 0 {
		j := w.queue[0]
		w.queue[0] = cacheFill{}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		n := int64(len(j.data))
		if err := w.write(j.name, j.data); err != nil {
			w.budget.Add(n)
			w.dropped.Add(1)
			slog.Debug("store cache fill from reader failed", "name", j.name, "err", err)
		} else {
			w.written.Add(1)
		}
		w.pending.Add(-n)
		w.mu.Lock()
	}
	w.writers--
	w.idle.Broadcast()
}

func (w *cacheWriter) write(name string, data []byte) error {
	if err := store.ValidName(name); err != nil {
		return err
	}
	f, err := atomicfile.Create(filepath.Join(w.root, "tmp"), "reader-*", 0o600)
	if err != nil {
		return fmt.Errorf("cache fill: %w", err)
	}
	defer f.Abort() // no-op after Commit
	f.NoSync = true // a cache: chunks are authenticated on read and refetched
	_, err = f.Write(data)
	if err == nil {
		p := w.path(name)
		if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
			err = f.Commit(p)
		}
	}
	if err != nil {
		return fmt.Errorf("cache fill: %w", err)
	}
	return nil
}

// wait blocks until every queued copy is written or dropped.
func (w *cacheWriter) wait() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.writers > 0 {
		w.idle.Wait()
	}
}

// fillingChain reads like chain and adds a copy found in a later tier to
// the cacheWriter in front of it.
type fillingChain struct {
	cache  *cacheWriter
	remote store.Backend
}

var _ store.VerifyingGetter = (*fillingChain)(nil)

func (c *fillingChain) Get(ctx context.Context, name string) ([]byte, error) {
	return c.GetVerified(ctx, name, func([]byte) error { return nil })
}

func (c *fillingChain) GetVerified(ctx context.Context, name string, check func([]byte) error) ([]byte, error) {
	obj, err := c.cache.Get(ctx, name)
	if err == nil {
		if err = check(obj); err == nil {
			return obj, nil
		}
		// Damaged: the remote's copy replaces it below (the worker's own
		// read of it would drop it).
	}
	obj, err = c.remote.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := check(obj); err != nil {
		return nil, err
	}
	c.cache.add(name, obj)
	return obj, nil
}

func (c *fillingChain) Put(context.Context, string, []byte) error { return errReadOnly }
func (c *fillingChain) Delete(context.Context, string) error      { return errReadOnly }

func (c *fillingChain) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	return c.remote.Stat(ctx, name)
}

func (c *fillingChain) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	return c.remote.List(ctx, prefix, fn)
}
