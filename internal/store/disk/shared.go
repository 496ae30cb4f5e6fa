package disk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
	"sync/atomic"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

// Shared is the directory of a disk Backend as another process sees it: the
// pager child reads the worker's disk cache through one and adds to it the
// objects it had to fetch from the remote, so that the next pager process,
// and the worker, find them locally; it also reads a store directory that a
// worker writes (a disk remote) without opening it.
//
// Shared keeps no index and never clears, indexes or evicts anything: Open
// would remove the temporary files the directory's owner may be writing,
// and the owner's Backend does the capacity accounting. Put writes as the
// Backend does (a temporary file in tmp/, then a rename, not synced), so a
// concurrent reader sees a whole object or none, and two processes adding
// the same object write the same bytes. The owner's Backend adopts an
// object added this way on its first Get of it (and indexes every one when
// it reopens) and evicts it like its own; until then it is not counted,
// which is why Put adds at most SharedOptions.Budget bytes.
type Shared struct {
	root   string
	budget atomic.Int64 // bytes Put may still add
}

// SharedOptions configures a Shared view.
type SharedOptions struct {
	// Budget bounds the bytes of the objects Put adds (the owner does not
	// count them until it adopts them); <= 0 means unbounded.
	Budget int64
}

var _ store.Backend = (*Shared)(nil)

// NewShared returns the view of the disk backend directory dir. It does no
// I/O: the directory need not exist until the first Put.
func NewShared(dir string, opts SharedOptions) *Shared {
	s := &Shared{root: dir}
	if opts.Budget <= 0 {
		opts.Budget = math.MaxInt64 / 2 // room to give back what a failed write took
	}
	s.budget.Store(opts.Budget)
	return s
}

// Get implements store.Backend. Unlike Backend.Get it does not record the
// use: the owner's LRU order is its own reads'.
func (s *Shared) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if store.ValidName(name) != nil {
		return nil, fmt.Errorf("disk: %s: %w", name, errdefs.ErrNotFound)
	}
	data, err := atomicfile.ReadFile(objectPath(s.root, name), store.MaxObjectSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("disk: %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("disk: %s: %w", name, err)
	}
	return data, nil
}

// Put implements store.Backend. An object past what is left of the budget
// is refused with errdefs.ErrTooLarge; a failed write gives its bytes back.
func (s *Shared) Put(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	n := int64(len(data))
	if s.budget.Add(-n) < 0 {
		s.budget.Add(n)
		return fmt.Errorf("disk: %s: %d bytes past the budget of a shared directory: %w", name, n, errdefs.ErrTooLarge)
	}
	if err := s.write(name, data); err != nil {
		s.budget.Add(n)
		return fmt.Errorf("disk: %s: %w", name, err)
	}
	return nil
}

func (s *Shared) write(name string, data []byte) error {
	// The owner's Open creates tmp/; a fresh directory has none yet.
	if err := os.MkdirAll(tmpDir(s.root), 0o700); err != nil {
		return err
	}
	// Not synced: a copy of an object authenticated on every read.
	f, err := writeTemp(s.root, data, false)
	if err != nil {
		return err
	}
	defer f.Abort() // no-op after Commit
	return commit(f, objectPath(s.root, name))
}

// Delete implements store.Backend: it removes the file. The owner's
// Backend forgets an indexed object whose file is gone on its next Get.
func (s *Shared) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := os.Remove(objectPath(s.root, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: %s: %w", name, err)
	}
	return nil
}

// Stat implements store.Backend from the file.
func (s *Shared) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return store.ObjectInfo{}, err
	}
	if store.ValidName(name) != nil {
		return store.ObjectInfo{}, fmt.Errorf("disk: %s: %w", name, errdefs.ErrNotFound)
	}
	fi, err := os.Stat(objectPath(s.root, name))
	if errors.Is(err, fs.ErrNotExist) {
		return store.ObjectInfo{}, fmt.Errorf("disk: %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return store.ObjectInfo{}, fmt.Errorf("disk: %s: %w", name, err)
	}
	return store.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements store.Backend by walking the directory; a directory that
// does not exist yet holds nothing.
func (s *Shared) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	var infos []store.ObjectInfo
	err := walk(s.root, func(name string, fi fs.FileInfo) error {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, store.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		return ctx.Err()
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: list %s: %w", s.root, err)
	}
	return store.Visit(ctx, infos, fn)
}
