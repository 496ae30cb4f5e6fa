package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Node is this worker's node id; the server answers on Subject(Node).
	Node string
	// Source is what the server serves from: the worker's disk cache (a
	// disk.Backend), never the remote (a peer asks the remote itself).
	Source store.Backend
	// MaxObject bounds the objects sent (default, and at most, the
	// connection's maximum payload less 4 KiB for headers); a larger one
	// is refused and the asker fetches it elsewhere.
	MaxObject int
	// Concurrency bounds the requests served at once (default 8); a
	// request past it is answered "busy" at once.
	Concurrency int
	// ReadTimeout bounds one read of Source (default 1s).
	ReadTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Server answers peers' chunk requests from a local cache.
type Server struct {
	cfg   ServerConfig
	sub   *nats.Subscription
	sem   chan struct{}
	wg    sync.WaitGroup
	stats struct{ requests, served, bytes, missing, refused, busy atomic.Int64 }
}

// ServerStats counts a server's answers.
type ServerStats struct {
	// Requests received; Served with the chunk, ServedBytes its bytes;
	// Missing, Refused and Busy the other answers.
	Requests, Served, ServedBytes, Missing, Refused, Busy int64
}

// Serve subscribes to Subject(cfg.Node) on nc and answers until Close.
func Serve(nc *nats.Conn, cfg ServerConfig) (*Server, error) {
	if cfg.Node == "" || cfg.Source == nil {
		return nil, fmt.Errorf("peer: server needs a node and a source: %w", errdefs.ErrInvalid)
	}
	limit := int(nc.MaxPayload()) - 4<<10
	if cfg.MaxObject <= 0 || cfg.MaxObject > limit {
		cfg.MaxObject = limit
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency)}
	sub, err := nc.Subscribe(Subject(cfg.Node), s.receive)
	if err != nil {
		return nil, fmt.Errorf("peer: subscribe %s: %w: %w", Subject(cfg.Node), errdefs.ErrUnavailable, err)
	}
	s.sub = sub
	return s, nil
}

// Close stops answering and waits for the answers under way.
func (s *Server) Close() error {
	err := s.sub.Unsubscribe()
	s.wg.Wait()
	return err
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Requests: s.stats.requests.Load(), Served: s.stats.served.Load(), ServedBytes: s.stats.bytes.Load(),
		Missing: s.stats.missing.Load(), Refused: s.stats.refused.Load(), Busy: s.stats.busy.Load()}
}

// receive runs on the subscription's goroutine: it hands the request to
// a goroutine of its own, so that one slow disk read does not hold up the
// others, or answers "busy".
func (s *Server) receive(m *nats.Msg) {
	s.stats.requests.Add(1)
	select {
	case s.sem <- struct{}{}:
	default:
		s.stats.busy.Add(1)
		s.respond(m, statusBusy, nil)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		s.answer(m)
	}()
}

func (s *Server) answer(m *nats.Msg) {
	name := string(m.Data)
	if !servable(name) || store.ValidName(name) != nil {
		s.stats.refused.Add(1)
		s.respond(m, statusRefused, nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadTimeout)
	defer cancel()
	data, err := s.cfg.Source.Get(ctx, name)
	switch {
	case err == nil && len(data) > s.cfg.MaxObject:
		s.stats.refused.Add(1)
		s.respond(m, statusRefused, nil)
	case err == nil:
		s.stats.served.Add(1)
		s.stats.bytes.Add(int64(len(data)))
		s.respond(m, statusOK, data)
	default:
		if !errors.Is(err, errdefs.ErrNotFound) {
			s.cfg.Logger.Debug("peer: cache read failed", "name", name, "err", err)
		}
		s.stats.missing.Add(1)
		s.respond(m, statusMissing, nil)
	}
}

func (s *Server) respond(m *nats.Msg, status string, data []byte) {
	r := &nats.Msg{Header: nats.Header{Header: {status}}, Data: data}
	if err := m.RespondMsg(r); err != nil {
		s.cfg.Logger.Debug("peer: reply failed", "err", err)
	}
}
