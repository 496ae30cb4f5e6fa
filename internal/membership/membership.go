// Package membership is who is in the cluster and what each worker holds:
// every worker announces itself (address, capacity, memory, drain flag,
// and the state of each of its functions) in a KV bucket whose entries
// expire, and every worker watches the bucket into a read-only view of
// the whole cluster (State) that placement decides on.
//
// # Presence
//
// A worker's entry is keyed by its node id and rewritten at least every
// TTL/3 (the heartbeat) and at most every PublishInterval when its state
// changed. The bucket's MaxAge is the TTL, so the entry of a worker that
// stopped writing (killed, partitioned) disappears from the bucket; the
// view does not wait for that: a worker not heard from for a TTL is left
// out of State at once, by the local clock of the worker that watches.
//
// Every heartbeat is also published on core NATS (HeartbeatSubject), and
// a watcher counts either as hearing from the worker. KV writes need the
// bucket's stream leader; while JetStream elects a new one (seconds, after
// the NATS node that led it died) no worker can write, and without the
// core heartbeat every worker would drop every other from its view, failing
// the requests forwarded meanwhile. Core NATS needs no leader, only routes:
// a partitioned worker stops hearing the others either way.
//
// One value per worker carries its function states too: a single write
// per change and per heartbeat, and a worker's functions vanish with it.
// With hundreds of functions per worker the value grows to tens of
// kilobytes; splitting it into one key per function is the next step if
// that shows up in the heartbeat's cost.
//
// # Drain
//
// Drain flags live in a bucket of their own, without expiry, written by
// whoever drains (any worker's API): the drained worker learns it from
// its watch, reports draining in its entry, and placement stops choosing
// it.
package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// HeartbeatPrefix is the prefix of the core NATS subjects workers publish
// their entries on: HeartbeatPrefix + node id.
const HeartbeatPrefix = "thaw.heartbeat."

// Bucket names.
const (
	WorkersBucket = "thaw-workers"
	DrainBucket   = "thaw-drain"
)

// Defaults of Options.
const (
	DefaultTTL             = 3 * time.Second
	DefaultPublishInterval = 250 * time.Millisecond
)

// Worker is one worker's entry.
type Worker struct {
	ID string `json:"id"`
	// Address is the HTTP address peers reach the worker at (HOST:PORT).
	Address string `json:"address"`
	// Slots is how many instances of the default memory size fit in the
	// worker's memory budget; MemoryBytes the budget and MemoryUsed what
	// instances and pooled regions hold of it.
	Slots       int    `json:"slots"`
	MemoryBytes uint64 `json:"memory_bytes"`
	MemoryUsed  uint64 `json:"memory_used"`
	// Draining workers take no new placements.
	Draining bool      `json:"draining"`
	Started  time.Time `json:"started"`
	// Functions is the state of each function deployed on the worker,
	// sorted by name.
	Functions []Function `json:"functions"`
}

// Function is a function's state on one worker, as announced and as
// `GET /v1/cluster` shows it: the wire type itself, so the two cannot
// drift apart.
type Function = api.ClusterFunction

// State is the cluster as one worker sees it: the live workers, sorted
// by id. It is a copy; callers may keep it.
type State struct {
	Workers []Worker `json:"workers"`
}

// Worker returns the worker with id, if live.
func (s State) Worker(id string) (Worker, bool) {
	for _, w := range s.Workers {
		if w.ID == id {
			return w, true
		}
	}
	return Worker{}, false
}

// Options configure Open.
type Options struct {
	// TTL is how long a worker's entry lives without a heartbeat
	// (default DefaultTTL); heartbeats come every TTL/3.
	TTL time.Duration
	// PublishInterval is the least time between two writes of a changed
	// entry (default DefaultPublishInterval).
	PublishInterval time.Duration
}

// Membership announces one worker and watches all of them.
type Membership struct {
	id    string
	opts  Options
	kv    jetstream.KeyValue
	drain jetstream.KeyValue

	conn *nats.Conn

	mu       sync.Mutex
	workers  map[string]seen
	draining map[string]bool
	// left holds when a worker's entry was deleted (it left cleanly): a
	// core heartbeat it sent before that, arriving late, must not bring
	// it back.
	left    map[string]time.Time
	changed chan struct{} // closed and replaced on every change seen
}

// seen is a worker's last entry and when this worker received it.
type seen struct {
	w  Worker
	at time.Time
}

// Open opens the membership buckets on node and starts watching them
// until ctx ends.
func Open(ctx context.Context, node *cluster.Node, opts Options) (*Membership, error) {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.PublishInterval <= 0 {
		opts.PublishInterval = DefaultPublishInterval
	}
	kv, err := node.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: WorkersBucket, Description: "thaw workers", History: 1, TTL: opts.TTL})
	if err != nil {
		return nil, err
	}
	drain, err := node.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: DrainBucket, Description: "thaw drain flags", History: 1})
	if err != nil {
		return nil, err
	}
	m := &Membership{id: node.ID, opts: opts, kv: kv, drain: drain, conn: node.Conn, workers: map[string]seen{}, draining: map[string]bool{},
		left: map[string]time.Time{}, changed: make(chan struct{})}
	sub, err := node.Conn.Subscribe(HeartbeatPrefix+"*", m.heard)
	if err != nil {
		return nil, fmt.Errorf("membership heartbeats: %v: %w", err, errdefs.ErrUnavailable)
	}
	context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	for _, b := range []jetstream.KeyValue{kv, drain} {
		w, err := b.WatchAll(ctx)
		if err != nil {
			return nil, fmt.Errorf("membership watch: %v: %w", err, errdefs.ErrUnavailable)
		}
		go m.watch(ctx, w, b == drain)
	}
	return m, nil
}

// watch applies one bucket's changes to the view.
func (m *Membership) watch(ctx context.Context, w jetstream.KeyWatcher, drain bool) {
	cluster.Follow(ctx, w, func(e jetstream.KeyValueEntry) bool {
		if e == nil {
			return true // end of the initial values
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		put := e.Operation() == jetstream.KeyValuePut
		switch {
		case drain:
			m.draining[e.Key()] = put && string(e.Value()) == "1"
		case !put:
			delete(m.workers, e.Key())
			m.left[e.Key()] = time.Now()
		default:
			var wk Worker
			if err := json.Unmarshal(e.Value(), &wk); err == nil && wk.ID == e.Key() {
				m.workers[e.Key()] = seen{w: wk, at: time.Now()}
				delete(m.left, e.Key())
			}
		}
		close(m.changed)
		m.changed = make(chan struct{})
		return true
	})
}

// heard applies a core heartbeat: the worker is live now, in the state it
// sent. Only a change of that state wakes the view's watchers.
func (m *Membership) heard(msg *nats.Msg) {
	var wk Worker
	if err := json.Unmarshal(msg.Data, &wk); err != nil || msg.Subject != HeartbeatPrefix+wk.ID || wk.ID == "" {
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if at, ok := m.left[wk.ID]; ok && now.Sub(at) < m.opts.TTL {
		return
	}
	old, known := m.workers[wk.ID]
	m.workers[wk.ID] = seen{w: wk, at: now}
	if !known || now.Sub(old.at) >= m.opts.TTL || !reflect.DeepEqual(old.w, wk) {
		close(m.changed)
		m.changed = make(chan struct{})
	}
}

// State returns the live workers: those heard from within the TTL.
func (m *Membership) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	s := State{Workers: make([]Worker, 0, len(m.workers))}
	for _, e := range m.workers {
		if now.Sub(e.at) < m.opts.TTL {
			w := e.w
			w.Functions = append([]Function(nil), w.Functions...)
			s.Workers = append(s.Workers, w)
		}
	}
	sort.Slice(s.Workers, func(i, j int) bool { return s.Workers[i].ID < s.Workers[j].ID })
	return s
}

// Changed returns a channel closed at the next change the watches see.
func (m *Membership) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Draining reports whether worker id is asked to drain.
func (m *Membership) Draining(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining[id]
}

// SetDrain asks worker id to drain (on) or to take placements again.
func (m *Membership) SetDrain(ctx context.Context, id string, on bool) error {
	if err := cluster.ValidID(id); err != nil {
		return err
	}
	v := "0"
	if on {
		v = "1"
	}
	if _, err := m.drain.Put(ctx, id, []byte(v)); err != nil {
		return fmt.Errorf("drain %s: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	return nil
}

// Run announces this worker until ctx ends: self is asked for the
// worker's entry every PublishInterval and the entry written when it
// changed, or at least every TTL/3. Run returns when ctx ends, after
// removing the entry (a clean shutdown leaves at once).
func (m *Membership) Run(ctx context.Context, self func() Worker) {
	t := time.NewTicker(m.opts.PublishInterval)
	defer t.Stop()
	var last Worker
	var lastAt time.Time
	for {
		w := self()
		w.ID = m.id
		if !reflect.DeepEqual(w, last) || time.Since(lastAt) >= m.opts.TTL/3 {
			b, err := json.Marshal(w)
			if err == nil {
				// The core heartbeat first: it needs no stream leader,
				// and the KV write may wait for one.
				_ = m.conn.Publish(HeartbeatPrefix+m.id, b)
				pctx, cancel := context.WithTimeout(ctx, m.opts.TTL/3)
				_, err = m.kv.Put(pctx, m.id, b)
				cancel()
			}
			if err == nil {
				last, lastAt = w, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = m.kv.Delete(dctx, m.id) // failing that, the TTL removes it
			return
		case <-t.C:
		}
	}
}
