// Package registry is the cluster's function registry: one record per
// function in a replicated JetStream KV bucket, and the modules the
// records name in a JetStream object store.
//
// # Generations
//
// A record's generation is the KV revision it was written at: unique in
// the bucket and increasing, so a later deploy of a name always has a
// higher generation, also after a delete. Writes are compare-and-swap on
// the generation the writer last read (Put with prev, Delete with prev):
// of concurrent deploys that read the same generation exactly one
// succeeds, the others get errdefs.ErrConflict and decide again on what
// is there now.
//
// # Modules
//
// Modules are content-addressed: the object's name is the module's
// SHA-256, checked again on every read, so a record never runs a module
// other than the one it names. They live in a JetStream object store
// rather than the snapshot store because every cluster has one (also
// without S3), with the replicas of the registry itself, and a deploy is
// then one system to reach, not two.
//
// # Deletion safety
//
// A snapshot may be deleted from the shared store only when no live
// record references it (References): a worker replacing or pruning its own
// snapshots asks first, so the snapshot a record names (the deploying
// worker's, which other workers may restore) outlives every generation
// that uses it.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/cluster"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Bucket names.
const (
	// FunctionsBucket holds one record per function, keyed by name.
	FunctionsBucket = "thaw-functions"
	// ModulesBucket holds modules, named by their SHA-256.
	ModulesBucket = "thaw-modules"
)

// Record is a function's registry entry.
type Record struct {
	// Name is the function's name (the key).
	Name string `json:"name"`
	// Generation is the KV revision of the record; set on read, not
	// stored in the value.
	Generation uint64 `json:"-"`
	// Config is the function's deployment configuration.
	Config api.Config `json:"config"`
	// ModuleSHA names the module object (hex SHA-256); ModuleSize is its
	// length.
	ModuleSHA  string `json:"module_sha256"`
	ModuleSize int    `json:"module_size"`
	// Origin is the node that deployed this generation, and Snapshot the
	// id of the snapshot it took (empty: none, a cold function).
	Origin   string    `json:"origin"`
	Snapshot string    `json:"snapshot,omitempty"`
	Deployed time.Time `json:"deployed"`
}

// Event is one change the watch reports: a record written (Deleted
// false) or a function deleted (Record.Name and Generation only), or,
// once, the end of the records that existed when the watch began
// (Synced).
type Event struct {
	Record  Record
	Deleted bool
	Synced  bool
}

// Registry is the function registry. Its methods are safe for
// concurrent use.
type Registry struct {
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore

	mu   sync.Mutex
	last map[string]Event // the last event the watch delivered for each name
}

// Open opens (creating if need be) the registry's buckets on node,
// waiting for them until ctx ends.
func Open(ctx context.Context, node *cluster.Node) (*Registry, error) {
	kv, err := node.KeyValue(ctx, jetstream.KeyValueConfig{Bucket: FunctionsBucket, Description: "thaw function registry", History: 1})
	if err != nil {
		return nil, err
	}
	obj, err := node.ObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: ModulesBucket, Description: "thaw modules by SHA-256"})
	if err != nil {
		return nil, err
	}
	return &Registry{kv: kv, obj: obj, last: map[string]Event{}}, nil
}

// classify gives a NATS error its category: a lost quorum or a
// connection that is down is errdefs.ErrUnavailable (a partitioned
// worker refuses deploys with 503), a failed compare-and-swap
// errdefs.ErrConflict.
func classify(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%s: changed meanwhile (%v): %w", what, err, errdefs.ErrConflict)
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrObjectNotFound):
		return fmt.Errorf("%s: %w", what, errdefs.ErrNotFound)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return fmt.Errorf("%s: %v: %w", what, err, errdefs.ErrInvalid)
	}
	return fmt.Errorf("%s: cluster registry unreachable (%v): %w", what, err, errdefs.ErrUnavailable)
}

// Writable checks that the functions bucket has a leader to take writes
// (a stream info request answered by it) that hears from a majority of
// its replicas: a worker cut off from the quorum fails here, before it
// deploys anything locally, with errdefs.ErrUnavailable. Reads alone
// cannot tell, since a replica may answer them; nor can the leader's
// answer alone, since a partitioned leader keeps calling itself leader
// until it notices it lost its quorum (after 5 s embedded, 10 s in a
// stock nats-server), and the write it then takes never commits.
func (r *Registry) Writable(ctx context.Context) error {
	st, err := r.kv.Status(ctx)
	if err != nil {
		return classify("registry", err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil || bs.StreamInfo().Cluster == nil {
		return nil
	}
	cl := bs.StreamInfo().Cluster
	if !quorum(cl, bs.StreamInfo().Config.Replicas) {
		return fmt.Errorf("registry: leader %s hears from too few of its replicas: %w", cl.Leader, errdefs.ErrUnavailable)
	}
	return nil
}

// peerSilence is how long a replica may go unheard before the leader
// counts it lost. An external nats-server's raft heartbeats every second
// and its leader gives up after 10 s (thaw's embedded servers: 100 ms and
// 5 s, internal/cluster); 3 s refused deploys on a 2-core machine busy
// compiling (heartbeats handled late), so 6.
const peerSilence = 6 * time.Second

// quorum reports whether a stream's leader, with the replicas it heard
// from within peerSilence, is a majority of its replicas.
func quorum(cl *jetstream.ClusterInfo, replicas int) bool {
	if cl.Leader == "" {
		return false
	}
	alive := 1
	for _, p := range cl.Replicas {
		if p != nil && !p.Offline && p.Active < peerSilence {
			alive++
		}
	}
	return alive > replicas/2
}

// Get returns the live record of name.
func (r *Registry) Get(ctx context.Context, name string) (Record, error) {
	e, err := r.kv.Get(ctx, name)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyDeleted) {
			err = jetstream.ErrKeyNotFound
		}
		return Record{}, classify("registry get "+name, err)
	}
	return decode(e)
}

// Generation returns the generation of name's live record, 0 if there is
// none (never deployed, or deleted): what Put takes as prev.
func (r *Registry) Generation(ctx context.Context, name string) (uint64, error) {
	rec, err := r.Get(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return 0, nil
	}
	return rec.Generation, err
}

// Put writes rec if name's live record is still of generation prev (0:
// there is none) and returns the new generation; otherwise it fails with
// errdefs.ErrConflict and writes nothing.
func (r *Registry) Put(ctx context.Context, rec Record, prev uint64) (uint64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	var gen uint64
	if prev == 0 {
		gen, err = r.kv.Create(ctx, rec.Name, b)
	} else {
		gen, err = r.kv.Update(ctx, rec.Name, b, prev)
	}
	return gen, classify("registry put "+rec.Name, err)
}

// Delete deletes name's record if it is still of generation prev.
func (r *Registry) Delete(ctx context.Context, name string, prev uint64) error {
	return classify("registry delete "+name, r.kv.Delete(ctx, name, jetstream.LastRevision(prev)))
}

// decode reads a record from an entry, checking that it names its key.
func decode(e jetstream.KeyValueEntry) (Record, error) {
	var rec Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, fmt.Errorf("registry record %s: %v: %w", e.Key(), err, errdefs.ErrCorrupt)
	}
	if rec.Name != e.Key() {
		return rec, fmt.Errorf("registry record %s names %q: %w", e.Key(), rec.Name, errdefs.ErrCorrupt)
	}
	rec.Generation = e.Revision()
	return rec, nil
}

// Watch reports every record that exists now, then Synced, then every
// change, until ctx ends (the channel is then closed). A record that
// fails to decode is skipped. While the watch runs, References answers
// from what it delivered.
func (r *Registry) Watch(ctx context.Context) (<-chan Event, error) {
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return nil, classify("registry watch", err)
	}
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		cluster.Follow(ctx, w, func(e jetstream.KeyValueEntry) bool {
			var ev Event
			switch {
			case e == nil:
				ev.Synced = true
			case e.Operation() != jetstream.KeyValuePut:
				ev.Deleted, ev.Record = true, Record{Name: e.Key(), Generation: e.Revision()}
			default:
				rec, err := decode(e)
				if err != nil {
					return true // skipped
				}
				ev.Record = rec
			}
			if !ev.Synced {
				r.mu.Lock()
				r.last[ev.Record.Name] = ev
				r.mu.Unlock()
			}
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return out, nil
}

// References reports whether a live record (as the watch last saw it)
// names snapshot id of function name: such a snapshot must stay in the
// shared store.
func (r *Registry) References(name, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev, ok := r.last[name]
	return ok && !ev.Deleted && id != "" && ev.Record.Snapshot == id
}

// Last returns the last change of name the watch delivered (a record or a
// deletion), and false if it delivered none. Unlike Get it cannot be
// answered by a replica that lags behind: the watch is an ordered
// consumer, so what it delivered was committed, in order.
func (r *Registry) Last(name string) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev, ok := r.last[name]
	return ev, ok
}

// SHA256 is the hex SHA-256 of b: a module's object name.
func SHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// PutModule stores wasm under its SHA-256 unless it is there already.
func (r *Registry) PutModule(ctx context.Context, wasm []byte) (string, error) {
	sha := SHA256(wasm)
	if info, err := r.obj.GetInfo(ctx, sha); err == nil && !info.Deleted && info.Size == uint64(len(wasm)) {
		return sha, nil
	}
	_, err := r.obj.PutBytes(ctx, sha, wasm)
	return sha, classify("store module "+sha[:12], err)
}

// moduleLag bounds how long Module looks again for a module it did not
// find. A module's name reaches a reader only after its writer stored it
// (a gateway's deploy request, a function's record), but the object
// store's reads are direct gets, which any replica of the stream answers,
// and a replica may apply the write a moment after the writer was told it
// was stored. That is our reading of why a gateway's deploy once failed as
// "not found" on every worker (TestClusterPlacement).
const moduleLag = 2 * time.Second

// moduleRetry is the pause between two looks for a module.
const moduleRetry = 50 * time.Millisecond

// Module returns the module named sha, checked against its hash. A module
// that is not there is looked for again for up to moduleLag (or until ctx
// ends) before the error wraps errdefs.ErrNotFound.
func (r *Registry) Module(ctx context.Context, sha string) ([]byte, error) {
	deadline := time.Now().Add(moduleLag)
	b, err := r.obj.GetBytes(ctx, sha)
	for errors.Is(err, jetstream.ErrObjectNotFound) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, classify("fetch module "+shortSHA(sha), err)
		case <-time.After(moduleRetry):
		}
		b, err = r.obj.GetBytes(ctx, sha)
	}
	if err != nil {
		return nil, classify("fetch module "+shortSHA(sha), err)
	}
	if SHA256(b) != sha {
		return nil, fmt.Errorf("module %s does not match its hash: %w", shortSHA(sha), errdefs.ErrCorrupt)
	}
	return b, nil
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
