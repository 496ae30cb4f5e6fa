package pager

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

// KindStore serves pages of one file of a snapshot in the chunk store
// (internal/store). It takes no descriptors; its parameters are a JSON
// StoreParams. The pager opens the store itself, with the StoreOpener
// given to RunIfChild: it cannot ask the main process for a chunk, because
// the thread that faulted holds its P there (the deadlock the pager
// process exists to avoid).
const KindStore = 2

// StoreOpener opens, in the pager process, the chunk store that a KindStore
// source reads from, for reading only. config is the source's
// StoreParams.Store, a description of the store only the opener
// understands (the worker's stack.Config, from internal/store/stack). The
// pager opens each distinct config once and keeps the store for its life.
//
// The pager needs of a store only its chunks, authenticated (store.Store,
// store.Snapshot, store.File); the opener is passed in so that this package
// links none of the backends behind them (minio-go among them).
type StoreOpener func(config json.RawMessage) (*store.Store, error)

// StoreParams are the parameters of a KindStore source. They carry the
// tenant's master secret: they travel only over the private socket pair
// to the worker's own pager child, and are never logged.
type StoreParams struct {
	// Store describes the store, for the pager's StoreOpener.
	Store    json.RawMessage `json:"store"`
	Snapshot string          `json:"snapshot"`
	// File is the file of the snapshot to serve (memory.img).
	File string `json:"file"`
	// Holders are the cluster's workers likely to hold the snapshot's
	// chunks, for the store's chunk tier (store.WithHolders).
	Holders []string `json:"holders,omitempty"`
}

// StoreSource returns the SourceSpec of a KindStore source.
func StoreSource(p StoreParams) (SourceSpec, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return SourceSpec{}, fmt.Errorf("pager: store source: %w", err)
	}
	return SourceSpec{Kind: KindStore, Params: b}, nil
}

// storeOpenTimeout bounds reading a snapshot's manifest when a session is
// served; it stays below the client's request timeout. Chunk fetches for
// faults are bounded by the session (faultBudget, attemptTimeout).
const storeOpenTimeout = 5 * time.Second

// storeCache holds the stores the pager has opened, by configuration, and
// their opened snapshots (manifests are read once per pager, not per
// session).
type storeCache struct {
	open StoreOpener // nil: no store sources

	mu     sync.Mutex
	stores map[string]*store.Store
	snaps  map[string]*store.Snapshot
}

const maxOpenSnapshots = 256

func newStoreCache(open StoreOpener) *storeCache {
	return &storeCache{open: open, stores: map[string]*store.Store{}, snaps: map[string]*store.Snapshot{}}
}

func (c *storeCache) snapshot(p *StoreParams) (*store.Snapshot, error) {
	if c.open == nil {
		return nil, fmt.Errorf("this pager opens no stores (RunIfChild without a StoreOpener): %w", errdefs.ErrInvalid)
	}
	key := string(p.Store)
	c.mu.Lock()
	defer c.mu.Unlock()
	skey := key + "\x00" + p.Snapshot
	if sn, ok := c.snaps[skey]; ok {
		return sn, nil
	}
	st, ok := c.stores[key]
	if !ok {
		var err error
		if st, err = c.open(p.Store); err != nil {
			return nil, err
		}
		c.stores[key] = st
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	sn, err := st.Open(ctx, p.Snapshot)
	if err != nil {
		return nil, err
	}
	if len(c.snaps) >= maxOpenSnapshots {
		clear(c.snaps)
	}
	c.snaps[skey] = sn
	return sn, nil
}

// storeSource serves a file of a store snapshot. Each fault reads through
// the store: the chunk holding the page is fetched (from the worker's disk
// cache if it has it, else the remote, and then added to that cache in the
// background for the next pager), authenticated and decrypted once, then
// kept in the store's decrypted-chunk cache for the next faults. A chunk
// that fails authentication is never installed.
type storeSource struct {
	f       *store.File
	zero    []bool // per chunk
	chunk   int64
	holders []string
}

var _ Source = (*storeSource)(nil)

func newStoreSource(files []*os.File, params []byte, stores *storeCache) (*storeSource, error) {
	closeAll(files)
	if len(files) != 0 {
		return nil, fmt.Errorf("store source takes no descriptors, got %d: %w", len(files), errdefs.ErrInvalid)
	}
	var p StoreParams
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("store source parameters: %v: %w", err, errdefs.ErrInvalid)
	}
	sn, err := stores.snapshot(&p)
	if err != nil {
		return nil, fmt.Errorf("store source: %w", err)
	}
	f, err := sn.File(p.File)
	if err != nil {
		return nil, fmt.Errorf("store source: %w", err)
	}
	s := &storeSource{f: f, holders: p.Holders}
	for _, e := range sn.Manifest().Files {
		if e.Name == p.File {
			s.chunk = int64(e.ChunkSize)
			for _, c := range e.Chunks {
				s.zero = append(s.zero, c.Zero)
			}
		}
	}
	return s, nil
}

func (s *storeSource) Size() int64 { return s.f.Size() }

func (s *storeSource) Zero(off int64) bool {
	i := off / s.chunk
	return i < int64(len(s.zero)) && s.zero[i]
}

func (s *storeSource) ReadAt(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	return s.ReadAtContext(ctx, p, off)
}

// ReadAtContext is ReadAt within ctx: the session gives each attempt of a
// fault its deadline.
func (s *storeSource) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := s.f.ReadAtContext(store.WithHolders(ctx, s.holders), p, off)
	if err != nil && n == len(p) || off+int64(n) >= s.f.Size() {
		err = nil // io.EOF at the end of the image: the rest reads as zeros
	}
	return n, err
}

func (s *storeSource) Close() error { return nil }
