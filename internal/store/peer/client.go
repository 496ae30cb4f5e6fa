package peer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

// Defaults of Config.
const (
	DefaultMaxPeers = 2
	DefaultTimeout  = 100 * time.Millisecond
)

// Config configures a Client.
type Config struct {
	// Conn is the worker's NATS connection.
	Conn *nats.Conn
	// Self is this worker's node id: never asked.
	Self string
	// Peers names the nodes likely to hold the chunk name, best first:
	// those whose published cache state lists the snapshot being read, or
	// its rendezvous homes. A chunk name says nothing of the snapshots
	// that use it, so ctx is the read's: the caller can attach what it is
	// restoring (function, snapshot) to the context of the restore and
	// find it here. Nil, or an empty answer: no peer is asked.
	Peers func(ctx context.Context, name string) []string
	// MaxPeers bounds the peers asked per miss (default DefaultMaxPeers);
	// Timeout bounds each ask (default DefaultTimeout). A miss on every
	// peer costs at most MaxPeers*Timeout before the remote is asked, and
	// much less when peers answer "missing" or are gone (NATS answers "no
	// responders" at once).
	MaxPeers int
	Timeout  time.Duration
}

// Client is the peer tier: a read-only store.Backend whose Get asks peers
// for chunks. Put and Delete do nothing (the tier holds nothing of its
// own: the tiered backend fills the disk cache above it), Stat finds
// nothing and List lists nothing; the tiered backend asks neither of a
// cache tier.
type Client struct {
	cfg   Config
	stats struct{ asks, hits, bytes, missing, timeouts, gone, refused atomic.Int64 }
}

var _ store.Backend = (*Client)(nil)

// Stats counts a Client's asks and what came of them.
type Stats struct {
	// Asks counts requests sent to peers; Hits the chunks a peer sent and
	// Bytes their bytes (before the store checks them: a copy that fails
	// is counted as Corrupt in the tiered backend's "peer" TierStat).
	Asks, Hits, Bytes int64
	// Missing counts "missing" answers; Timeouts asks unanswered within
	// Timeout; Gone asks with no responder; Refused "refused" and "busy"
	// answers and other errors.
	Missing, Timeouts, Gone, Refused int64
}

// NewClient returns the peer tier of cfg.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("peer: client needs a connection: %w", errdefs.ErrInvalid)
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Client{cfg: cfg}, nil
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Asks: c.stats.asks.Load(), Hits: c.stats.hits.Load(), Bytes: c.stats.bytes.Load(),
		Missing: c.stats.missing.Load(), Timeouts: c.stats.timeouts.Load(), Gone: c.stats.gone.Load(), Refused: c.stats.refused.Load()}
}

// errMiss is the error of a Get no peer answered with the object.
var errMiss = fmt.Errorf("peer: no peer has it: %w", errdefs.ErrNotFound)

// Get implements store.Backend: it asks the peers Peers names, in order,
// and returns the first copy sent. Every failure is a miss
// (errdefs.ErrNotFound), so that the tiered backend goes on quietly.
func (c *Client) Get(ctx context.Context, name string) ([]byte, error) {
	if !servable(name) || c.cfg.Peers == nil {
		return nil, errMiss
	}
	asked := 0
	for _, node := range c.cfg.Peers(ctx, name) {
		if asked == c.cfg.MaxPeers || ctx.Err() != nil {
			break
		}
		if node == c.cfg.Self || node == "" {
			continue
		}
		asked++
		if data, ok := c.ask(ctx, node, name); ok {
			return data, nil
		}
	}
	return nil, errMiss
}

// ask asks one node for name.
func (c *Client) ask(ctx context.Context, node, name string) ([]byte, bool) {
	c.stats.asks.Add(1)
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	m, err := c.cfg.Conn.RequestMsgWithContext(actx, &nats.Msg{Subject: Subject(node), Data: []byte(name)})
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		c.stats.gone.Add(1)
		return nil, false
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		c.stats.timeouts.Add(1)
		return nil, false
	case err != nil:
		c.stats.refused.Add(1)
		return nil, false
	}
	switch m.Header.Get(Header) {
	case statusOK:
		c.stats.hits.Add(1)
		c.stats.bytes.Add(int64(len(m.Data)))
		return m.Data, true
	case statusMissing:
		c.stats.missing.Add(1)
	default:
		c.stats.refused.Add(1)
	}
	return nil, false
}

// Put implements store.Backend: the tier keeps nothing, so there is
// nothing to write.
func (c *Client) Put(ctx context.Context, name string, data []byte) error {
	return store.ValidName(name)
}

// Delete implements store.Backend: nothing to delete here; peers' caches
// hold copies of chunks, which stay valid for as long as anyone reads
// them (a chunk's name is its content).
func (c *Client) Delete(ctx context.Context, name string) error { return nil }

// Stat implements store.Backend: the tier describes nothing.
func (c *Client) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	return store.ObjectInfo{}, fmt.Errorf("peer: stat %s: %w", name, errdefs.ErrNotFound)
}

// List implements store.Backend: the tier lists nothing.
func (c *Client) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	return nil
}
