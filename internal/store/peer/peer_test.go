package peer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/peer"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/store/tiered"
	"github.com/thaw-run/thaw/internal/testnats"
)

// origin is the shared remote, counting the chunk reads it serves.
type origin struct {
	store.Backend
	chunks, bytes atomic.Int64
}

func (o *origin) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := o.Backend.Get(ctx, name)
	if err == nil && strings.HasPrefix(name, "chunks/") {
		o.chunks.Add(1)
		o.bytes.Add(int64(len(b)))
	}
	return b, err
}

// slow delays every Get, as an overloaded peer's disk would.
type slow struct {
	store.Backend
	delay time.Duration
}

func (s slow) Get(ctx context.Context, name string) ([]byte, error) {
	time.Sleep(s.delay)
	return s.Backend.Get(ctx, name)
}

// node is one worker: a disk cache served to peers, and a tiered backend
// of that cache, the peer tier and the shared remote.
type node struct {
	id     string
	disk   *disk.Backend
	client *peer.Client
	b      *tiered.Backend
	srv    *peer.Server
}

func newNode(t *testing.T, s *server.Server, id string, remote store.Backend, cfg peer.Config) *node {
	t.Helper()
	dir := t.TempDir()
	d, err := disk.Open(dir+"/cache", disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{id: id, disk: d}
	nc := testnats.Connect(t, s)
	if n.srv, err = peer.Serve(nc, peer.ServerConfig{Node: id, Source: d}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.srv.Close() })
	cfg.Conn, cfg.Self = nc, id
	if n.client, err = peer.NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	n.b, err = tiered.New(tiered.Config{
		Caches:   []tiered.Tier{{Name: "disk", Backend: d}, {Name: "peer", Backend: n.client}},
		Remote:   remote,
		QueueDir: dir + "/queue",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.b.Close() })
	return n
}

// patient is the ask timeout of tests that expect peers to answer: far
// above the default, so that a loaded test machine does not turn a hit into
// a fall-through.
const patient = 10 * time.Second

func peers(ids ...string) func(context.Context, string) []string {
	return func(context.Context, string) []string { return ids }
}

func tierStat(b *tiered.Backend, tier string) store.TierStat {
	for _, s := range b.TierStats() {
		if s.Tier == tier {
			return s
		}
	}
	return store.TierStat{}
}

// snapshot writes a 2 MiB random snapshot through w's store and returns its
// content and the store keys to read it with.
func snapshot(t *testing.T, w *node) ([]byte, *store.Keys) {
	t.Helper()
	keys, err := store.NewKeys("acme", storetest.Secret(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Config{Backend: w.b, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2<<20)
	rand.Read(data)
	if _, err := st.Put(context.Background(), "snap", []store.FileSource{{Name: "mem.img", Size: int64(len(data)), R: bytes.NewReader(data)}}); err != nil {
		t.Fatal(err)
	}
	return data, keys
}

// read reads the snapshot through r's store and checks it against want.
func read(t *testing.T, r *node, keys *store.Keys, want []byte) {
	t.Helper()
	st, err := store.New(store.Config{Backend: r.b, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := st.Open(context.Background(), "snap")
	if err != nil {
		t.Fatal(err)
	}
	f, err := sn.File("mem.img")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatalf("reading the snapshot: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("snapshot read back differs")
	}
}

// TestServedFromPeer: a worker reads a snapshot another worker wrote; its
// chunks come from that worker's cache, none from the origin.
func TestServedFromPeer(t *testing.T) {
	s := testnats.Start(t)
	remote := &origin{Backend: mem.New(0)}
	b := newNode(t, s, "b", remote, peer.Config{})
	a := newNode(t, s, "a", remote, peer.Config{Peers: peers("a", "b"), Timeout: patient})
	data, keys := snapshot(t, b)
	read(t, a, keys, data)
	const chunks = 4 // 2 MiB in 512 KiB chunks
	if st := a.client.Stats(); st.Hits != chunks || st.Asks != chunks || st.Bytes < 2<<20 {
		t.Fatalf("peer client stats %+v; want %d hits", st, chunks)
	}
	if n := remote.chunks.Load(); n != 0 {
		t.Fatalf("%d chunks fetched from the origin, want 0", n)
	}
	if st := tierStat(a.b, "peer"); st.Hits != chunks {
		t.Fatalf("peer tier stat %+v", st)
	}
	if st := b.srv.Stats(); st.Served != chunks {
		t.Fatalf("server stats %+v", st)
	}

	// A chunk only the peer has (not even the origin).
	ctx := context.Background()
	if err := b.disk.Put(ctx, "chunks/acme/only-b", []byte("cached")); err != nil {
		t.Fatal(err)
	}
	if got, err := a.b.Get(ctx, "chunks/acme/only-b"); err != nil || string(got) != "cached" {
		t.Fatalf("Get of a chunk only a peer has = %q, %v", got, err)
	}
}

// TestFallThrough: peers that are gone, slow, missing the chunk, beyond
// MaxPeers or the worker itself: the chunk comes from the origin.
func TestFallThrough(t *testing.T) {
	s := testnats.Start(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		peers []string
		want  peer.Stats
	}{
		{"gone", []string{"nobody"}, peer.Stats{Asks: 1, Gone: 1}},
		{"slow", []string{"slow"}, peer.Stats{Asks: 1, Timeouts: 1}},
		{"missing", []string{"empty"}, peer.Stats{Asks: 1, Missing: 1}},
		{"MaxPeers", []string{"nobody", "empty", "full"}, peer.Stats{Asks: 2, Gone: 1, Missing: 1}},
		{"self", []string{"a"}, peer.Stats{}},
		{"none", nil, peer.Stats{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			remote := &origin{Backend: mem.New(0)}
			if err := remote.Backend.Put(ctx, "chunks/acme/c", []byte("origin")); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"empty", "full"} {
				n := newNode(t, s, id, remote, peer.Config{})
				if id == "full" {
					n.disk.Put(ctx, "chunks/acme/c", []byte("origin"))
				}
			}
			slowDisk, err := disk.Open(t.TempDir(), disk.Options{})
			if err != nil {
				t.Fatal(err)
			}
			slowDisk.Put(ctx, "chunks/acme/c", []byte("origin"))
			srv, err := peer.Serve(testnats.Connect(t, s), peer.ServerConfig{Node: "slow", Source: slow{slowDisk, time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cfg := peer.Config{Timeout: 50 * time.Millisecond}
			if tc.peers != nil {
				cfg.Peers = peers(tc.peers...)
			}
			a := newNode(t, s, "a", remote, cfg)
			if got, err := a.b.Get(ctx, "chunks/acme/c"); err != nil || string(got) != "origin" {
				t.Fatalf("Get = %q, %v", got, err)
			}
			if st := a.client.Stats(); st != tc.want {
				t.Fatalf("peer stats %+v, want %+v", st, tc.want)
			}
			if n := remote.chunks.Load(); n != 1 {
				t.Fatalf("%d chunk reads from the origin, want 1", n)
			}
		})
	}
}

// TestTamperedPeer: a peer's copy that fails authentication is rejected by
// the store, counted as corrupt, and the chunk is read from the origin.
func TestTamperedPeer(t *testing.T) {
	s := testnats.Start(t)
	ctx := context.Background()
	remote := &origin{Backend: mem.New(0)}
	b := newNode(t, s, "b", remote, peer.Config{})
	a := newNode(t, s, "a", remote, peer.Config{Peers: peers("b"), Timeout: patient})
	data, keys := snapshot(t, b)
	var names []string
	b.disk.List(ctx, "chunks/", func(fi store.ObjectInfo) error { names = append(names, fi.Name); return nil })
	obj, err := b.disk.Get(ctx, names[0])
	if err != nil {
		t.Fatal(err)
	}
	obj[len(obj)/2] ^= 1
	if err := b.disk.Put(ctx, names[0], obj); err != nil {
		t.Fatal(err)
	}
	read(t, a, keys, data)
	if n := remote.chunks.Load(); n != 1 {
		t.Fatalf("%d chunks fetched from the origin, want the tampered one", n)
	}
	if st := tierStat(a.b, "peer"); st.Corrupt != 1 || st.Hits != int64(len(names)-1) {
		t.Fatalf("peer tier stat %+v; want 1 corrupt, %d hits", st, len(names)-1)
	}
}

// TestServerRefuses: the server sends chunks only, and only those within
// its size bound.
func TestServerRefuses(t *testing.T) {
	s := testnats.Start(t)
	ctx := context.Background()
	d, err := disk.Open(t.TempDir(), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Put(ctx, "manifests/acme/m", []byte("manifest"))
	d.Put(ctx, "chunks/acme/big", make([]byte, 2000))
	d.Put(ctx, "chunks/acme/ok", []byte("fine"))
	srv, err := peer.Serve(testnats.Connect(t, s), peer.ServerConfig{Node: "b", Source: d, MaxObject: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc := testnats.Connect(t, s)
	for name, want := range map[string]string{
		"manifests/acme/m": "refused", "chunks/acme/big": "refused", "chunks/../x": "refused", "chunks/acme/none": "missing", "chunks/acme/ok": "ok",
	} {
		m, err := nc.RequestMsg(&nats.Msg{Subject: peer.Subject("b"), Data: []byte(name)}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(peer.Header); got != want || (want == "ok") != (string(m.Data) == "fine") {
			t.Errorf("%s: %s with %d bytes, want %s", name, got, len(m.Data), want)
		}
	}
	// The client never asks for a manifest.
	c, err := peer.NewClient(peer.Config{Conn: nc, Peers: peers("b")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "manifests/acme/m"); !errors.Is(err, errdefs.ErrNotFound) || c.Stats().Asks != 0 {
		t.Fatalf("Get manifest: %v after %d asks; want a miss without asking", err, c.Stats().Asks)
	}
}

// The conformance suite over a tiered backend with the peer tier: writing
// (peers hold nothing, the tier must not get in the way) and read-only
// (peers hold every object, and serve the chunks).
func TestConformance(t *testing.T) {
	s := testnats.Start(t)
	storetest.Run(t, func(t *testing.T) store.Backend {
		newNode(t, s, "b", mem.New(0), peer.Config{})
		return newNode(t, s, "a", mem.New(0), peer.Config{Peers: peers("b")}).b
	})
}

func TestReadOnlyConformance(t *testing.T) {
	s := testnats.Start(t)
	ctx := context.Background()
	storetest.RunReadOnly(t, func(t *testing.T, objects map[string][]byte) store.Backend {
		remote := mem.New(0)
		b := newNode(t, s, "b", remote, peer.Config{})
		for name, data := range objects {
			remote.Put(ctx, name, data)
			b.disk.Put(ctx, name, data)
		}
		c, err := peer.NewClient(peer.Config{Conn: testnats.Connect(t, s), Peers: peers("b"), Timeout: patient})
		if err != nil {
			t.Fatal(err)
		}
		ro, err := tiered.New(tiered.Config{Caches: []tiered.Tier{{Name: "peer", Backend: c}}, Remote: remote, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ro.Close()
			// Every subtest but these reads chunks, and must get them from the peer.
			quiet := strings.HasSuffix(t.Name(), "/List") || strings.HasSuffix(t.Name(), "/Missing")
			if !quiet && !t.Failed() && c.Stats().Hits == 0 {
				t.Errorf("no chunk was served by the peer")
			}
		})
		return ro
	})
}

// BenchmarkChunkGet compares reading a 512 KiB chunk from the local disk
// cache with asking a peer for it over NATS (in process here: the cost of
// the protocol and the copies, without a network).
func BenchmarkChunkGet(b *testing.B) {
	s := testnats.Start(b)
	ctx := context.Background()
	d, err := disk.Open(b.TempDir(), disk.Options{})
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, store.DefaultChunkSize+40)
	rand.Read(chunk)
	if err := d.Put(ctx, "chunks/acme/c", chunk); err != nil {
		b.Fatal(err)
	}
	srv, err := peer.Serve(testnats.Connect(b, s), peer.ServerConfig{Node: "b", Source: d})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c, err := peer.NewClient(peer.Config{Conn: testnats.Connect(b, s), Peers: peers("b"), Timeout: patient})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		be   store.Backend
	}{{"disk", d}, {"peer", c}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				if got, err := bc.be.Get(ctx, "chunks/acme/c"); err != nil || len(got) != len(chunk) {
					b.Fatalf("Get: %d bytes, %v (%+v)", len(got), err, c.Stats())
				}
			}
		})
	}
}

type snapKey struct{}

// TestPeersSeesReadContext: the Peers function gets the context of the
// read, so a worker can name the holders of the snapshot it restores.
func TestPeersSeesReadContext(t *testing.T) {
	s := testnats.Start(t)
	ctx := context.Background()
	remote := &origin{Backend: mem.New(0)}
	remote.Backend.Put(ctx, "chunks/acme/c", []byte("x"))
	b := newNode(t, s, "b", remote, peer.Config{})
	b.disk.Put(ctx, "chunks/acme/c", []byte("x"))
	holders := map[string][]string{"snap-on-b": {"b"}}
	a := newNode(t, s, "a", remote, peer.Config{Timeout: patient, Peers: func(ctx context.Context, _ string) []string {
		snap, _ := ctx.Value(snapKey{}).(string)
		return holders[snap]
	}})
	if _, err := a.b.Get(context.WithValue(ctx, snapKey{}, "snap-on-b"), "chunks/acme/c"); err != nil {
		t.Fatal(err)
	}
	if st := a.client.Stats(); st.Asks != 1 || st.Hits != 1 || remote.chunks.Load() != 0 {
		t.Fatalf("stats %+v, %d origin reads; want the chunk from b", st, remote.chunks.Load())
	}
}
