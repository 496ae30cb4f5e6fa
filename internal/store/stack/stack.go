// Package stack builds the store stacks a Config describes, in one place:
// the chunk store (internal/store) over a tiered backend of an optional
// memory tier and disk cache in front of a remote (a local directory or an
// S3 bucket), with the durable upload queue.
//
// Open builds the writing stack of the worker and the CLI. OpenReader
// builds the read-only stack of the pager child, which opens the store
// itself to serve lazy faults (a faulting thread holds its P, so the pager
// cannot ask the main process for chunks): it reads the worker's disk
// cache and adds to it what it fetched from the remote. Config is
// JSON-encodable for that reason: the worker hands it to its pager child,
// and OpenReaderJSON, the pager's pager.StoreOpener, opens it there, so
// that the pager package itself links no backend (minio-go among them).
package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/peer"
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

	// Peer, if set, is the cluster's chunk tier (a peer.Client, see
	// PeerTier), asked after the local caches and before the remote. It
	// is a live object over the worker's NATS connection, so it does not
	// travel to the pager child with the rest of Config: PeerURL does.
	Peer store.Backend `json:"-"`
	// PeerURL and PeerNode, if set, give a reader without Peer (the pager
	// child) a chunk tier of its own: OpenReader connects to the NATS at
	// PeerURL (the worker's embedded server's loopback client listener,
	// or the external NATS) and asks peers as node PeerNode. Which peers
	// comes with each read (store.WithHolders). The child cannot use the
	// worker's connection: a thread faulting on userfaultfd memory holds
	// its P in the worker, so the worker cannot be asked for a chunk.
	PeerURL  string `json:"peer_url,omitempty"`
	PeerNode string `json:"peer_node,omitempty"`
}

// Validate checks that exactly one remote is configured and the keys can
// be derived.
func (c *Config) Validate() error {
	if (c.Dir == "") == (c.S3 == nil) {
		return fmt.Errorf("stack: configure exactly one of a store directory and an S3 bucket: %w", errdefs.ErrInvalid)
	}
	if _, err := store.NewKeys(c.Tenant, c.Secret); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	return nil
}

// JSON returns c encoded for the pager child (pager.StoreParams.Store),
// which opens it with OpenReaderJSON. Encoding cannot fail: every field is
// plain data.
func (c *Config) JSON() json.RawMessage {
	b, _ := json.Marshal(c)
	return b
}

// Handle is an opened store and what must be closed with it.
type Handle struct {
	Store *store.Store
	// Tiered is the tiered backend under Store (read-only when opened by
	// OpenReader).
	Tiered *tiered.Backend
	// Remote is the remote backend under Tiered.
	Remote store.Backend
	// Cache is the local disk cache tier (nil without one): what a
	// peer.Server serves to the other workers.
	Cache store.Backend
}

// Close stops the tiered backend's uploader (queued writes stay on disk)
// and writes its pending cache fills.
func (h *Handle) Close() error { return h.Tiered.Close() }

// Open opens the store for the worker (or a CLI): the remote behind a
// tiered backend with an optional memory tier and an optional disk cache,
// and the durable upload queue. An S3 endpoint that is unreachable does not
// fail Open (s3.Open): the bucket is checked again on later use, and
// meanwhile the store serves from its local tiers and queues writes.
func Open(ctx context.Context, c Config) (*Handle, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var remote store.Backend
	if c.S3 != nil {
		b, err := s3.Open(ctx, *c.S3)
		if err != nil {
			return nil, fmt.Errorf("stack: %w", err)
		}
		remote = b
	} else {
		b, err := disk.Open(c.Dir, disk.Options{Sync: true})
		if err != nil {
			return nil, fmt.Errorf("stack: %w", err)
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
			return nil, fmt.Errorf("stack: cache: %w", err)
		}
		// Filled in the background: a restore reading from the remote
		// does not wait for the disk writes.
		caches = append(caches, tiered.Tier{Name: "disk", Backend: b, Async: true})
	}
	caches = withPeer(caches, c.Peer)
	q := c.QueueDir
	if q == "" {
		if c.CacheDir != "" {
			q = filepath.Join(c.CacheDir, "queue")
		} else {
			q = filepath.Clean(c.Dir) + ".queue"
		}
	}
	return open(c, tiered.Config{Caches: caches, Remote: remote, QueueDir: q})
}

// OpenReader opens the store for reading only, as the pager child does: a
// read-only tiered backend, which never writes to the remote and has no
// upload queue. The remote directory and the worker's disk cache (if any)
// are read through disk.Shared views, never opened as disk backends (whose
// Open clears temporary files the worker may be writing); the chunks it
// had to fetch from the remote are added to the cache in the background,
// so the next pager process finds them locally, and the worker's disk
// backend adopts them and manages the cache's capacity. A cache copy that
// fails authentication is replaced by the remote's.
func OpenReader(c Config) (*Handle, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var remote store.Backend
	if c.S3 != nil {
		b, err := s3.New(*c.S3)
		if err != nil {
			return nil, fmt.Errorf("stack: %w", err)
		}
		remote = b
	} else {
		remote = disk.NewShared(c.Dir, disk.SharedOptions{})
	}
	var caches []tiered.Tier
	if c.CacheDir != "" {
		// This process may add at most a quarter of the cache's capacity
		// before the worker's disk backend has counted it.
		cache := disk.NewShared(filepath.Join(c.CacheDir, "chunks"), disk.SharedOptions{Budget: readerFillBudget(c.CacheBytes)})
		caches = append(caches, tiered.Tier{Name: "disk", Backend: cache, Async: true})
	}
	p := c.Peer
	if p == nil && c.PeerURL != "" {
		// No peer tier if NATS is not there: the remote serves.
		if nc, err := nats.Connect(c.PeerURL, nats.Name("thaw-pager-"+c.PeerNode)); err == nil {
			p = PeerTier(nc, c.PeerNode)
		}
	}
	caches = withPeer(caches, p)
	return open(c, tiered.Config{Caches: caches, Remote: remote, ReadOnly: true})
}

// OpenReaderJSON opens the store of config (Config.JSON) as OpenReader
// does and returns its chunk store. It is the pager.StoreOpener of the
// binaries that run the pager child (pager.RunIfChild). The store stays
// open for the life of the process.
func OpenReaderJSON(config json.RawMessage) (*store.Store, error) {
	var c Config
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("stack: store config: %v: %w", err, errdefs.ErrInvalid)
	}
	h, err := OpenReader(c)
	if err != nil {
		return nil, err
	}
	return h.Store, nil
}

// open builds the tiered backend of tc and the chunk store of c over it.
func open(c Config, tc tiered.Config) (*Handle, error) {
	keys, err := store.NewKeys(c.Tenant, c.Secret)
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	tb, err := tiered.New(tc)
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	st, err := store.New(store.Config{Backend: tb, Keys: keys, ChunkSize: c.ChunkSize, CacheBytes: c.DecryptedCacheBytes, Concurrency: c.Concurrency, GCGrace: c.GCGrace})
	if err != nil {
		_ = tb.Close()
		return nil, err
	}
	h := &Handle{Store: st, Tiered: tb, Remote: tc.Remote}
	for _, t := range tc.Caches {
		if t.Name == "disk" {
			h.Cache = t.Backend
		}
	}
	return h, nil
}

// PeerTier returns the cluster's chunk tier over nc for worker self: a
// peer.Client asking the nodes each read names (store.WithHolders).
func PeerTier(nc *nats.Conn, self string) store.Backend {
	c, _ := peer.NewClient(peer.Config{Conn: nc, Self: self, Peers: store.Holders}) // fails only without nc
	if c == nil {
		return nil
	}
	return c
}

// withPeer appends the peer tier, if any, to caches: after the local
// tiers, so that a peer is asked only on a local miss.
func withPeer(caches []tiered.Tier, p store.Backend) []tiered.Tier {
	if p == nil {
		return caches
	}
	return append(caches, tiered.Tier{Name: "peer", Backend: p})
}

// readerFillBudget is how many bytes one reader process may add to a disk
// cache of capacity bytes (<= 0: unbounded, as is the budget then).
func readerFillBudget(capacity int64) int64 {
	if capacity <= 0 {
		return 0
	}
	return max(capacity/4, 1)
}
