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
	"github.com/thaw-run/thaw/internal/storesnap"
)

// KindStore serves pages of one file of a snapshot in the chunk store
// (internal/store). It takes no descriptors; its parameters are a JSON
// StoreParams. The pager opens the store itself: it cannot ask the main
// process for a chunk, because the thread that faulted holds its P there
// (the deadlock the pager process exists to avoid).
const KindStore = 2

// StoreParams are the parameters of a KindStore source. They carry the
// tenant's master secret: they travel only over the private socket pair
// to the worker's own pager child, and are never logged.
type StoreParams struct {
	Store    storesnap.Config `json:"store"`
	Snapshot string           `json:"snapshot"`
	// File is the file of the snapshot to serve (memory.img).
	File string `json:"file"`
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

// stores are the stores the pager has opened, by configuration, and their
// opened snapshots (manifests are read once per pager, not per session).
var stores struct {
	sync.Mutex
	open  map[string]*storesnap.Handle
	snaps map[string]*store.Snapshot
}

const maxOpenSnapshots = 256

func openStoreSnapshot(p *StoreParams) (*store.Snapshot, error) {
	key := p.Store.Key()
	stores.Lock()
	defer stores.Unlock()
	if stores.open == nil {
		stores.open = map[string]*storesnap.Handle{}
		stores.snaps = map[string]*store.Snapshot{}
	}
	skey := key + "\x00" + p.Snapshot
	if sn, ok := stores.snaps[skey]; ok {
		return sn, nil
	}
	h, ok := stores.open[key]
	if !ok {
		var err error
		if h, err = storesnap.OpenReader(p.Store); err != nil {
			return nil, err
		}
		stores.open[key] = h
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	defer cancel()
	sn, err := h.Store.Open(ctx, p.Snapshot)
	if err != nil {
		return nil, err
	}
	if len(stores.snaps) >= maxOpenSnapshots {
		clear(stores.snaps)
	}
	stores.snaps[skey] = sn
	return sn, nil
}

// storeSource serves a file of a store snapshot. Each fault reads through
// the store: the chunk holding the page is fetched (from the worker's disk
// cache if it has it, else the remote, and then added to that cache in the
// background for the next pager), authenticated and decrypted once, then
// kept in the store's decrypted-chunk cache for the next faults. A chunk
// that fails authentication is never installed.
type storeSource struct {
	f     *store.File
	zero  []bool // per chunk
	chunk int64
}

var _ Source = (*storeSource)(nil)

func newStoreSource(files []*os.File, params []byte) (*storeSource, error) {
	closeAll(files)
	if len(files) != 0 {
		return nil, fmt.Errorf("store source takes no descriptors, got %d: %w", len(files), errdefs.ErrInvalid)
	}
	var p StoreParams
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("store source parameters: %v: %w", err, errdefs.ErrInvalid)
	}
	sn, err := openStoreSnapshot(&p)
	if err != nil {
		return nil, fmt.Errorf("store source: %w", err)
	}
	f, err := sn.File(p.File)
	if err != nil {
		return nil, fmt.Errorf("store source: %w", err)
	}
	s := &storeSource{f: f}
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
	n, err := s.f.ReadAtContext(ctx, p, off)
	if err != nil && n == len(p) || off+int64(n) >= s.f.Size() {
		err = nil // io.EOF at the end of the image: the rest reads as zeros
	}
	return n, err
}

func (s *storeSource) Close() error { return nil }
