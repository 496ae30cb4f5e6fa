// Package mem is an in-memory store.Backend bounded in bytes with
// least-recently-used eviction: the top tier of a tiered store, and a
// stand-in for a remote store in tests.
package mem

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/lru"
	"github.com/thaw-run/thaw/internal/store"
)

// Backend is a bytes-bounded LRU of objects. The zero value is not usable;
// call New.
type Backend struct {
	capacity int64

	mu      sync.Mutex
	entries *lru.Cache[string, *entry]
	now     func() time.Time
}

type entry struct {
	data    []byte
	modTime time.Time
}

var _ store.Backend = (*Backend)(nil)

// New returns an empty Backend holding at most capacity bytes of object
// data; capacity <= 0 means unbounded (for tests that use it as a remote).
func New(capacity int64) *Backend {
	return &Backend{capacity: capacity, entries: lru.New[string](capacity, func(e *entry) int64 { return int64(len(e.data)) }, nil), now: time.Now}
}

// Get implements store.Backend. A hit makes the object most recently used.
// The returned slice must not be modified.
func (b *Backend) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries.Get(name)
	if !ok {
		return nil, fmt.Errorf("mem: %s: %w", name, errdefs.ErrNotFound)
	}
	return e.data, nil
}

// Put implements store.Backend, evicting least recently used objects until
// data fits. An object larger than the whole capacity is refused with
// errdefs.ErrTooLarge rather than flushing the cache for nothing.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("mem: %w", err)
	}
	size := int64(len(data))
	if b.capacity > 0 && size > b.capacity {
		return fmt.Errorf("mem: %s: %d bytes exceed capacity %d: %w", name, size, b.capacity, errdefs.ErrTooLarge)
	}
	cp := append([]byte(nil), data...) // callers may reuse their buffer
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries.Add(name, &entry{data: cp, modTime: b.now()}) // fits: checked above
	return nil
}

// Delete implements store.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries.Remove(name)
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
		return store.ObjectInfo{}, fmt.Errorf("mem: %s: %w", name, errdefs.ErrNotFound)
	}
	return store.ObjectInfo{Name: name, Size: int64(len(e.data)), ModTime: e.modTime}, nil
}

// List implements store.Backend. fn runs without the lock held, on a
// snapshot of the matching entries, so it may call back into the Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	b.mu.Lock()
	var infos []store.ObjectInfo
	for name, e := range b.entries.All() {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, store.ObjectInfo{Name: name, Size: int64(len(e.data)), ModTime: e.modTime})
		}
	}
	b.mu.Unlock()
	return store.Visit(ctx, infos, fn)
}

// Used returns the number of object bytes held.
func (b *Backend) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entries.Used()
}

// SetModTime overrides an object's modification time. It exists for tests
// of lease-based garbage collection, which need "old" objects.
func (b *Backend) SetModTime(name string, t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries.Peek(name)
	if !ok {
		return fmt.Errorf("mem: %s: %w", name, errdefs.ErrNotFound)
	}
	e.modTime = t
	return nil
}
