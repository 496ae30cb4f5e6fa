// Package tiered composes store backends into one: cache tiers (memory,
// then local disk) in front of a remote object store, with a durable local
// upload queue for when the remote is down.
//
// Reads try each cache tier in order, then the queue, then the remote, and
// fill the tiers above the one that answered: synchronously, or, for tiers
// marked Async (the disk cache), by a bounded background writer, so that a
// restore fetching from the remote does not also wait for local disk writes. Writes go through to the
// remote and fill the caches. When the remote is unreachable
// (errdefs.ErrUnavailable), writes are queued on local disk, fsynced, and
// uploaded in their original order by a background uploader when it
// returns; while anything is queued, new writes queue behind it, so a
// manifest never reaches the remote before its chunks.
//
// A read-only Backend (Config.ReadOnly) has no queue and refuses writes;
// its reads fill its caches all the same. It is how a process that shares
// another's caches reads the store: the pager child, over the worker's disk
// cache (disk.Shared).
package tiered

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

// Tier is a named cache tier.
type Tier struct {
	Name    string
	Backend store.Backend
	// Async fills this tier off the read path: a read answered by a lower
	// tier queues its copy for a background writer instead of writing it
	// before returning. Writes (Put) still fill it synchronously.
	Async bool
}

// Config configures a tiered Backend.
type Config struct {
	// Caches are the cache tiers, fastest first (e.g. mem, then disk).
	Caches []Tier
	// Remote is the authoritative, shared store.
	Remote store.Backend
	// QueueDir holds writes waiting for the remote. Required unless
	// ReadOnly; it must be on local disk and must not be shared between
	// processes.
	QueueDir string
	// ReadOnly makes a Backend that only reads: Put and Delete fail with
	// errdefs.ErrInvalid, there is no upload queue (QueueDir must be
	// empty) and no uploader. Reads try the caches, then the remote, and
	// fill the caches above the tier that answered, as usual.
	ReadOnly bool
	// RetryInterval is how often the uploader retries while the remote is
	// down (default 5s).
	RetryInterval time.Duration
	// MaxPendingFill bounds the bytes queued for Async tiers (default
	// DefaultMaxPendingFill); fills past it are dropped.
	MaxPendingFill int64
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Backend is the tiered composition. Close it to stop the uploader.
type Backend struct {
	cfg    Config
	q      *queue         // nil when read-only
	stats  []tierCounters // caches..., queue, remote
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	drainM sync.Mutex
	filler *filler
	// degraded is set while writes are being queued, so the outage is
	// logged once, not per write.
	degraded atomic.Bool
}

type tierCounters struct {
	name                         string
	hits, misses, bytes, corrupt atomic.Int64
}

var (
	_ store.Backend         = (*Backend)(nil)
	_ store.VerifyingGetter = (*Backend)(nil)
	_ store.Originer        = (*Backend)(nil)
	_ store.TierStatser     = (*Backend)(nil)
)

// errReadOnly is the error of a write to a read-only Backend.
var errReadOnly = fmt.Errorf("tiered: read-only: %w", errdefs.ErrInvalid)

// New opens the upload queue (recovering writes queued before a restart)
// and starts the background uploader; a read-only Backend has neither.
func New(cfg Config) (*Backend, error) {
	if cfg.Remote == nil {
		return nil, fmt.Errorf("tiered: remote is required: %w", errdefs.ErrInvalid)
	}
	if cfg.ReadOnly != (cfg.QueueDir == "") {
		return nil, fmt.Errorf("tiered: a queue dir is required, and only, unless read-only: %w", errdefs.ErrInvalid)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxPendingFill <= 0 {
		cfg.MaxPendingFill = DefaultMaxPendingFill
	}
	b := &Backend{cfg: cfg, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if !cfg.ReadOnly {
		q, err := openQueue(cfg.QueueDir)
		if err != nil {
			return nil, err
		}
		b.q = q
	}
	b.stats = make([]tierCounters, len(cfg.Caches)+2)
	for i, t := range cfg.Caches {
		b.stats[i].name = t.Name
	}
	b.stats[len(cfg.Caches)].name = "queue"
	b.stats[len(cfg.Caches)+1].name = "remote"
	b.filler = newFiller(b, cfg.MaxPendingFill)
	if cfg.ReadOnly {
		close(b.done) // no uploader
		return b, nil
	}
	go b.uploader()
	b.kick()
	return b, nil
}

func (b *Backend) queueStats() *tierCounters  { return &b.stats[len(b.cfg.Caches)] }
func (b *Backend) remoteStats() *tierCounters { return &b.stats[len(b.cfg.Caches)+1] }

// Close stops the uploader and writes the pending asynchronous cache
// fills. Queued writes stay on disk for the next New.
func (b *Backend) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
	b.filler.close()
	return nil
}

func (b *Backend) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Backend) uploader() {
	defer close(b.done)
	t := time.NewTicker(b.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
		case <-t.C:
		}
		if b.q.len() == 0 {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-b.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := b.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
			b.cfg.Logger.Debug("store upload queue: remote not ready", "pending", b.q.len(), "err", err)
		}
		cancel()
	}
}

// Flush uploads every queued write now, in order. It returns nil when the
// queue is empty (always, when read-only), or the remote's error
// (errdefs.ErrUnavailable while it is down), leaving the rest queued.
func (b *Backend) Flush(ctx context.Context) error {
	if b.q == nil {
		return nil
	}
	b.drainM.Lock()
	defer b.drainM.Unlock()
	n := 0
	for {
		it := b.q.front()
		if it == nil {
			if n > 0 || b.degraded.Load() {
				b.cfg.Logger.Info("store upload queue drained", "uploaded", n)
			}
			b.degraded.Store(false)
			return nil
		}
		data, err := b.q.read(it)
		if errors.Is(err, fs.ErrNotExist) {
			b.q.remove(it)
			continue
		}
		if err != nil {
			return fmt.Errorf("tiered: reading queued %s: %w", it.name, err)
		}
		if err := b.cfg.Remote.Put(ctx, it.name, data); err != nil {
			return fmt.Errorf("tiered: uploading queued %s: %w", it.name, err)
		}
		b.q.remove(it)
		n++
	}
}

// Pending returns the number of queued writes.
func (b *Backend) Pending() int {
	if b.q == nil {
		return 0
	}
	return b.q.len()
}

// Put implements store.Backend: write-through to the remote, or to the
// durable queue when the remote is down or the queue is not empty. Either
// way the caches are filled. A queued write is reported as success: it is
// on local disk and will reach the remote.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	if b.cfg.ReadOnly {
		return fmt.Errorf("%w: put %s", errReadOnly, name)
	}
	// A background fill of an older copy read earlier must not land
	// after this write's (a replaced manifest would come back).
	b.filler.cancel(name)
	if b.q.len() == 0 {
		err := b.cfg.Remote.Put(ctx, name, data)
		if err != nil && !errors.Is(err, errdefs.ErrUnavailable) {
			return err
		}
		if err != nil && !b.degraded.Swap(true) {
			b.cfg.Logger.Warn("store remote unavailable; queueing writes on local disk", "err", err)
		}
		if err == nil {
			b.fill(ctx, len(b.cfg.Caches), name, data)
			return nil
		}
	}
	if err := b.q.add(name, data); err != nil {
		return err
	}
	b.fill(ctx, len(b.cfg.Caches), name, data)
	return nil
}

// fill stores data in the cache tiers above tier `below`. Failures only
// cost cache capacity and are never reported to the reader.
func (b *Backend) fill(ctx context.Context, below int, name string, data []byte) {
	b.fillTiers(ctx, below, name, data, false)
}

// fillRead is fill on the read path: Async tiers are filled in the
// background.
func (b *Backend) fillRead(ctx context.Context, below int, name string, data []byte) {
	b.fillTiers(ctx, below, name, data, true)
}

func (b *Backend) fillTiers(ctx context.Context, below int, name string, data []byte, read bool) {
	var async []int
	for i := range min(below, len(b.cfg.Caches)) {
		t := b.cfg.Caches[i]
		if read && t.Async {
			async = append(async, i)
			continue
		}
		if err := t.Backend.Put(ctx, name, data); err != nil {
			b.cfg.Logger.Debug("store cache fill failed", "tier", t.Name, "name", name, "err", err)
		}
	}
	if len(async) > 0 {
		b.filler.add(name, data, async)
	}
}

// Get implements store.Backend.
func (b *Backend) Get(ctx context.Context, name string) ([]byte, error) {
	return b.get(ctx, name, nil, true)
}

// GetVerified implements store.VerifyingGetter: a cache copy that fails
// check with errdefs.ErrCorrupt is deleted from its cache and the next tier
// is tried; the good copy then refills the caches.
func (b *Backend) GetVerified(ctx context.Context, name string, check func([]byte) error) ([]byte, error) {
	return b.get(ctx, name, check, true)
}

func (b *Backend) get(ctx context.Context, name string, check func([]byte) error, useCaches bool) ([]byte, error) {
	var corrupt error
	tally := store.TallyOf(ctx)
	accept := func(st *tierCounters, data []byte) (bool, error) {
		if check != nil {
			if err := check(data); err != nil {
				if !errors.Is(err, errdefs.ErrCorrupt) {
					return false, err
				}
				st.corrupt.Add(1)
				corrupt = err
				return false, nil
			}
		}
		st.hits.Add(1)
		st.bytes.Add(int64(len(data)))
		if tally != nil {
			tally.Add(st.name, int64(len(data)))
		}
		return true, nil
	}
	if useCaches {
		for i, t := range b.cfg.Caches {
			st := &b.stats[i]
			data, err := t.Backend.Get(ctx, name)
			if err != nil {
				if !errors.Is(err, errdefs.ErrNotFound) {
					b.cfg.Logger.Debug("store cache read failed", "tier", t.Name, "name", name, "err", err)
				}
				st.misses.Add(1)
				continue
			}
			ok, err := accept(st, data)
			if err != nil {
				return nil, err
			}
			if !ok {
				b.cfg.Logger.Warn("store cache entry failed authentication; dropped", "tier", t.Name, "name", name)
				_ = t.Backend.Delete(ctx, name)
				continue
			}
			b.fillRead(ctx, i, name, data)
			return data, nil
		}
	}
	var it *queued // nil when read-only
	if b.q != nil {
		if it = b.q.lookup(name); it == nil {
			b.queueStats().misses.Add(1)
		}
	}
	if it != nil {
		data, err := b.q.read(it)
		if err == nil {
			ok, err := accept(b.queueStats(), data)
			if err != nil {
				return nil, err
			}
			if ok {
				if useCaches {
					b.fillRead(ctx, len(b.cfg.Caches), name, data)
				}
				return data, nil
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tiered: reading queued %s: %w", name, err)
		}
	}
	st := b.remoteStats()
	data, err := b.cfg.Remote.Get(ctx, name)
	if err != nil {
		st.misses.Add(1)
		if corrupt != nil && errors.Is(err, errdefs.ErrNotFound) {
			return nil, corrupt
		}
		return nil, err
	}
	ok, err := accept(st, data)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("tiered: remote copy: %w", corrupt)
	}
	if useCaches {
		b.fillRead(ctx, len(b.cfg.Caches), name, data)
	}
	return data, nil
}

// Stat implements store.Backend from the authoritative copies (queue, then
// remote): caches may hold objects the remote has deleted.
func (b *Backend) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if b.q == nil {
		return b.cfg.Remote.Stat(ctx, name)
	}
	if it := b.q.lookup(name); it != nil {
		return store.ObjectInfo{Name: name, Size: it.size, ModTime: it.modTime}, nil
	}
	return b.cfg.Remote.Stat(ctx, name)
}

// Delete implements store.Backend: the object is removed from every tier.
// It fails while the remote is down, so GC never half-runs.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if b.cfg.ReadOnly {
		return fmt.Errorf("%w: delete %s", errReadOnly, name)
	}
	b.filler.cancel(name)
	for _, t := range b.cfg.Caches {
		_ = t.Backend.Delete(ctx, name)
	}
	b.q.removeName(name)
	return b.cfg.Remote.Delete(ctx, name)
}

// List implements store.Backend: the union of the queue and the remote.
func (b *Backend) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	if b.q == nil {
		return b.cfg.Remote.List(ctx, prefix, fn)
	}
	queued := b.q.list(prefix)
	seen := make(map[string]bool, len(queued))
	for _, fi := range queued {
		seen[fi.Name] = true
		if err := fn(fi); err != nil {
			return err
		}
	}
	return b.cfg.Remote.List(ctx, prefix, func(fi store.ObjectInfo) error {
		if seen[fi.Name] {
			return nil
		}
		return fn(fi)
	})
}

// TierStats implements store.TierStatser. A read's context may also carry
// a store.Tally (store.WithTally), to which the tier that served it adds
// its bytes: per restore, where these counters are per process.
func (b *Backend) TierStats() []store.TierStat {
	out := make([]store.TierStat, len(b.stats))
	for i := range b.stats {
		s := &b.stats[i]
		out[i] = store.TierStat{Tier: s.name, Hits: s.hits.Load(), Misses: s.misses.Load(), Bytes: s.bytes.Load(), Corrupt: s.corrupt.Load()}
	}
	return out
}

// Origin implements store.Originer: the same backend with reads that skip
// the caches, so Verify authenticates the copies that matter.
func (b *Backend) Origin() store.Backend { return origin{b} }

type origin struct{ *Backend }

func (o origin) Get(ctx context.Context, name string) ([]byte, error) {
	return o.get(ctx, name, nil, false)
}

func (o origin) GetVerified(ctx context.Context, name string, check func([]byte) error) ([]byte, error) {
	return o.get(ctx, name, check, false)
}
