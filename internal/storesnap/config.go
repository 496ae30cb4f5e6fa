// Package storesnap bridges snapshot directories (internal/snapshot) and the
// chunk store (internal/store): Publish puts a snapshot's files into the
// store as one store snapshot, Open reads a snapshot back from the store
// alone, and Config describes a store in a form that can be handed to the
// pager child process, which opens the same store itself to serve lazy
// faults (a faulting thread holds its P, so the pager cannot ask the main
// process for chunks).
package storesnap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/tiered"
)

// Config says where a store is and how to open it. It is JSON-encodable
// because the worker sends it (secret included) to its own pager child over
// a private socket pair; it must never be logged or written to disk.
type Config struct {
	// Tenant names the key domain and the object prefix.
	Tenant string `json:"tenant"`
	// Secret is the master secret (store.LoadSecret).
	Secret []byte `json:"secret"`

	// Exactly one remote: Dir, a local directory (a disk backend; tests and
	// single-node set-ups), or S3.
	Dir string     `json:"dir,omitempty"`
	S3  *s3.Config `json:"s3,omitempty"`

	// CacheDir, if set, is the local disk cache in front of the remote;
	// CacheBytes bounds it (<= 0: unbounded). MemCacheBytes bounds an
	// in-memory tier of encrypted objects (0: none).
	CacheDir      string `json:"cache_dir,omitempty"`
	CacheBytes    int64  `json:"cache_bytes,omitempty"`
	MemCacheBytes int64  `json:"mem_cache_bytes,omitempty"`
	// QueueDir holds writes waiting for an unreachable remote (default
	// CacheDir/queue, or Dir/../<base>.queue without a cache). Only the
	// writing process (the worker) uses it.
	QueueDir string `json:"queue_dir,omitempty"`

	// Store tuning (see store.Config; zero takes its defaults).
	ChunkSize           int   `json:"chunk_size,omitempty"`
	DecryptedCacheBytes int64 `json:"decrypted_cache_bytes,omitempty"`
	Concurrency         int   `json:"concurrency,omitempty"`
	// GCGrace is the upload lease of GC (store.Config.GCGrace).
	GCGrace time.Duration `json:"gc_grace,omitempty"`
}

// Validate checks that exactly one remote is configured and the keys can
// be derived.
func (c *Config) Validate() error {
	if (c.Dir == "") == (c.S3 == nil) {
		return fmt.Errorf("storesnap: configure exactly one of a store directory and an S3 bucket: %w", errdefs.ErrInvalid)
	}
	if _, err := store.NewKeys(c.Tenant, c.Secret); err != nil {
		return fmt.Errorf("storesnap: %w", err)
	}
	return nil
}

// Key identifies the store a Config opens (everything but tuning), for
// sharing one opened store among sessions.
func (c *Config) Key() string {
	k := *c
	k.ChunkSize, k.DecryptedCacheBytes, k.Concurrency, k.GCGrace = 0, 0, 0, 0
	b, _ := json.Marshal(k)
	return string(b)
}

// Handle is an opened store and what must be closed with it.
type Handle struct {
	Store *store.Store
	// Tiered is the tiered backend, nil when the store has no cache tier
	// and was opened read-only.
	Tiered *tiered.Backend
	// Remote is the remote backend (a *disk.Backend, *s3.Backend or a
	// read-only directory).
	Remote store.Backend

	closeOnce sync.Once
	cleanup   []func()
}

// Close stops the tiered backend's uploader (queued writes stay on disk).
func (h *Handle) Close() error {
	h.closeOnce.Do(func() {
		if h.Tiered != nil {
			_ = h.Tiered.Close()
		}
		for _, f := range h.cleanup {
			f()
		}
	})
	return nil
}

// Open opens the store for the worker (or a CLI): the remote behind a
// tiered backend with an optional memory tier and an optional disk cache,
// and the durable upload queue. An S3 endpoint that is unreachable does not
// fail Open: the bucket is checked again on later use, and meanwhile the
// store serves from its local tiers and queues writes.
func Open(ctx context.Context, c Config) (*Handle, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	keys, _ := store.NewKeys(c.Tenant, c.Secret)
	var remote store.Backend
	if c.S3 != nil {
		b, err := s3.New(*c.S3)
		if err != nil {
			return nil, fmt.Errorf("storesnap: %w", err)
		}
		// An unreachable endpoint does not fail Open (openBucket).
		if remote, err = openBucket(ctx, b, c.S3.Bucket); err != nil {
			return nil, fmt.Errorf("storesnap: %w", err)
		}
	} else {
		b, err := disk.Open(c.Dir, disk.Options{Sync: true})
		if err != nil {
			return nil, fmt.Errorf("storesnap: %w", err)
		}
		remote = b
	}
	var caches []tiered.Tier
	if c.MemCacheBytes > 0 {
		caches = append(caches, tiered.Tier{Name: "mem", Backend: mem.New(c.MemCacheBytes)})
	}
	if c.CacheDir != "" {
		b, err := disk.Open(filepath.Join(c.CacheDir, "chunks"), disk.Options{Capacity: c.CacheBytes})
		if err != nil {
			return nil, fmt.Errorf("storesnap: cache: %w", err)
		}
		// Filled in the background: a restore reading from the remote
		// does not wait for the disk writes.
		caches = append(caches, tiered.Tier{Name: "disk", Backend: b, Async: true})
	}
	q := c.QueueDir
	if q == "" {
		if c.CacheDir != "" {
			q = filepath.Join(c.CacheDir, "queue")
		} else {
			q = filepath.Clean(c.Dir) + ".queue"
		}
	}
	tb, err := tiered.New(tiered.Config{Caches: caches, Remote: remote, QueueDir: q})
	if err != nil {
		return nil, fmt.Errorf("storesnap: %w", err)
	}
	st, err := store.New(store.Config{Backend: tb, Keys: keys, ChunkSize: c.ChunkSize, CacheBytes: c.DecryptedCacheBytes, Concurrency: c.Concurrency, GCGrace: c.GCGrace})
	if err != nil {
		_ = tb.Close()
		return nil, err
	}
	return &Handle{Store: st, Tiered: tb, Remote: remote}, nil
}

// OpenReader opens the store for reading only, as the pager child does: it
// never writes to the remote and never runs the upload queue. It reads the
// worker's disk cache (if any) and adds to it, in the background and with
// atomic renames, the chunks it had to fetch from the remote, so the next
// pager process finds them locally; it never opens the cache as a
// disk.Backend (whose Open clears temporary files the worker may be writing)
// and leaves managing its capacity to the worker, whose disk backend adopts
// these files (see cacheWriter). A cache copy that fails authentication is
// skipped (the worker's own reads drop it).
func OpenReader(c Config) (*Handle, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	keys, _ := store.NewKeys(c.Tenant, c.Secret)
	var remote store.Backend
	if c.S3 != nil {
		b, err := s3.New(*c.S3)
		if err != nil {
			return nil, fmt.Errorf("storesnap: %w", err)
		}
		remote = b
	} else {
		remote = readOnlyDir{c.Dir}
	}
	var (
		be store.Backend = chain{remote}
		cw *cacheWriter
	)
	if c.CacheDir != "" {
		// This process may add at most a quarter of the cache's capacity
		// before the worker's disk backend has counted it (readerFillBudget).
		cw = newCacheWriter(filepath.Join(c.CacheDir, "chunks"), readerFillBudget(c.CacheBytes))
		be = &fillingChain{cache: cw, remote: remote}
	}
	st, err := store.New(store.Config{Backend: be, Keys: keys, ChunkSize: c.ChunkSize, CacheBytes: c.DecryptedCacheBytes, Concurrency: c.Concurrency, GCGrace: c.GCGrace})
	if err != nil {
		return nil, err
	}
	h := &Handle{Store: st, Remote: remote}
	if cw != nil {
		h.cleanup = append(h.cleanup, cw.wait)
	}
	return h, nil
}

// readerFillBudget is how many bytes one reader process may add to a disk
// cache of capacity bytes (<= 0: unbounded).
func readerFillBudget(capacity int64) int64 {
	if capacity <= 0 {
		return 1 << 62
	}
	return capacity / 4
}

// readOnlyDir reads the objects of a disk backend's directory (the layout
// of internal/store/disk: objects/<last two characters>/<name with '/' as
// '~'>) without opening it as a disk.Backend, whose Open clears temporary
// files another process may be writing.
type readOnlyDir struct{ root string }

var errReadOnly = fmt.Errorf("storesnap: read-only view: %w", errdefs.ErrInvalid)

func (d readOnlyDir) path(name string) string {
	esc := strings.ReplaceAll(name, "/", "~")
	fan := "00"
	if len(esc) >= 2 {
		fan = esc[len(esc)-2:]
	}
	return filepath.Join(d.root, "objects", fan, esc)
}

func (d readOnlyDir) Get(ctx context.Context, name string) ([]byte, error) {
	if err := store.ValidName(name); err != nil {
		return nil, err
	}
	b, err := atomicfile.ReadFile(d.path(name), store.MaxObjectSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dir: %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dir: %s: %w", name, err)
	}
	return b, nil
}

func (d readOnlyDir) Put(context.Context, string, []byte) error { return errReadOnly }
func (d readOnlyDir) Delete(context.Context, string) error      { return errReadOnly }

func (d readOnlyDir) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	fi, err := os.Stat(d.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return store.ObjectInfo{}, fmt.Errorf("dir: %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return store.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (d readOnlyDir) List(context.Context, string, func(store.ObjectInfo) error) error {
	return errReadOnly
}

// chain reads from the first backend holding a copy that passes the check.
type chain []store.Backend

var _ store.VerifyingGetter = chain(nil)

func (c chain) Get(ctx context.Context, name string) ([]byte, error) {
	return c.GetVerified(ctx, name, func([]byte) error { return nil })
}

func (c chain) GetVerified(ctx context.Context, name string, check func([]byte) error) ([]byte, error) {
	var last error
	for _, b := range c {
		obj, err := b.Get(ctx, name)
		if err == nil {
			if err = check(obj); err == nil {
				return obj, nil
			}
		}
		// Missing, damaged or unreachable here: try the next copy.
		last = err
	}
	return nil, last
}

func (c chain) Put(context.Context, string, []byte) error { return errReadOnly }
func (c chain) Delete(context.Context, string) error      { return errReadOnly }

func (c chain) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	return c[len(c)-1].Stat(ctx, name)
}

func (c chain) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	return c[len(c)-1].List(ctx, prefix, fn)
}
