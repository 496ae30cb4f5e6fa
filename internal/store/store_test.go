package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/mem"
)

const chunk = 64 << 10

var secret = bytes.Repeat([]byte{0x42}, 32)

func keys(t testing.TB, tenant string, sec []byte) *store.Keys {
	t.Helper()
	k, err := store.NewKeys(tenant, sec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newStore(t testing.TB, be store.Backend, k *store.Keys, mod func(*store.Config)) *store.Store {
	t.Helper()
	cfg := store.Config{Backend: be, Keys: k, ChunkSize: chunk, CacheBytes: 1 << 20, Concurrency: 4}
	if mod != nil {
		mod(&cfg)
	}
	s, err := store.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// image returns a sparse-looking memory image: size bytes, data in the
// chunks listed in dataChunks (seeded by seed), zeros elsewhere.
func image(size int, seed uint64, dataChunks ...int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 1))
	for _, c := range dataChunks {
		end := min((c+1)*chunk, size)
		for i := c * chunk; i < end; i++ {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

func src(name string, b []byte) store.FileSource {
	return store.FileSource{Name: name, Size: int64(len(b)), R: bytes.NewReader(b)}
}

func count(t testing.TB, be store.Backend, prefix string) int {
	t.Helper()
	n := 0
	if err := be.List(context.Background(), prefix, func(store.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPutOpenReadAt(t *testing.T) {
	ctx := context.Background()
	be := mem.New(0)
	s := newStore(t, be, keys(t, "acme", secret), nil)
	img := image(10*chunk+1234, 1, 0, 3, 4, 10) // last chunk partial
	ws := image(2*chunk+5, 2, 0, 1, 2)
	res, err := s.Put(ctx, "fn-1", []store.FileSource{src("mem.img", img), src("ws.img", ws)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != 11+3 || res.ZeroChunks != 7 || res.NewChunks != 7 {
		t.Fatalf("PutResult = %+v, want 14 chunks, 7 zero, 7 new", res)
	}
	if n := count(t, be, "chunks/acme/"); n != 7 {
		t.Fatalf("%d chunk objects stored, want 7 (zero chunks are not stored)", n)
	}
	sn, err := s.Open(ctx, "fn-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := sn.Files(); len(got) != 2 || got[0].Size != int64(len(img)) || got[0].ZeroChunks != 7 {
		t.Fatalf("Files = %+v", got)
	}
	f, err := sn.File("mem.img")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		off, n  int
		wantEOF bool
	}{
		{"first byte", 0, 1, false},
		{"whole chunk", 3 * chunk, chunk, false},
		{"spans data and zero chunks", 2*chunk + 100, 3 * chunk, false},
		{"zero chunk only", 6 * chunk, 100, false},
		{"tail", 10 * chunk, 1234, false},
		{"past end", 10*chunk + 1000, 1000, true},
		{"whole file", 0, len(img), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := make([]byte, tc.n)
			n, err := f.ReadAt(p, int64(tc.off))
			if tc.wantEOF != (err == io.EOF) || (err != nil && err != io.EOF) {
				t.Fatalf("err = %v, want EOF %v", err, tc.wantEOF)
			}
			want := img[tc.off:min(tc.off+tc.n, len(img))]
			if n != len(want) || !bytes.Equal(p[:n], want) {
				t.Fatalf("read %d bytes, want %d equal to the image", n, len(want))
			}
		})
	}
	if _, err := sn.File("nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("File(nope): %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, "missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Open(missing): %v, want ErrNotFound", err)
	}
	if got := s.Counters(); got.ZeroReads == 0 || got.Fetched != 4 || got.CacheHits == 0 {
		t.Errorf("Counters = %+v, want zero reads, 4 fetches (one per data chunk of mem.img), cache hits", got)
	}
}

func TestDedup(t *testing.T) {
	ctx := context.Background()
	be := mem.New(0)
	s := newStore(t, be, keys(t, "acme", secret), nil)
	base := image(16*chunk, 7, 0, 1, 2, 3, 4, 5, 6, 7)
	if _, err := s.Put(ctx, "v1", []store.FileSource{src("mem.img", base)}); err != nil {
		t.Fatal(err)
	}
	v2 := bytes.Clone(base)
	v2[5*chunk+17] ^= 1 // one chunk differs
	res, err := s.Put(ctx, "v2", []store.FileSource{src("mem.img", v2)})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewChunks != 1 || res.ReusedChunks != 7 {
		t.Fatalf("second snapshot: %+v, want 1 new and 7 reused chunks", res)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshots != 2 || st.Chunks != 9 || st.ZeroBytes != 16*chunk {
		t.Fatalf("Stats = %+v, want 2 snapshots, 9 chunks, 16 zero chunks", st)
	}
	if st.DedupRatio < 1.7 || st.DedupRatio > 16.0/9 {
		t.Fatalf("DedupRatio = %.3f, want 16/9 minus the per-chunk overhead", st.DedupRatio)
	}

	// Another tenant with the same data shares nothing: its names and
	// ciphertexts differ, so it cannot confirm what acme stores.
	s2 := newStore(t, be, keys(t, "other", secret), nil)
	res, err = s2.Put(ctx, "v1", []store.FileSource{src("mem.img", base)})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewChunks != 8 {
		t.Fatalf("other tenant reused chunks: %+v", res)
	}
	objs := map[string][]byte{}
	for _, tenant := range []string{"acme", "other"} {
		be.List(ctx, "chunks/"+tenant+"/", func(fi store.ObjectInfo) error {
			b, _ := be.Get(ctx, fi.Name)
			objs[strings.TrimPrefix(fi.Name, "chunks/"+tenant+"/")] = b
			return nil
		})
	}
	if len(objs) != 17 {
		t.Fatalf("%d distinct chunk ids across tenants, want 17 (no shared id)", len(objs))
	}
}

func TestWrongKey(t *testing.T) {
	ctx := context.Background()
	be := mem.New(0)
	s := newStore(t, be, keys(t, "acme", secret), nil)
	if _, err := s.Put(ctx, "v1", []store.FileSource{src("mem.img", image(chunk, 1, 0))}); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{0x43}, 32)
	tests := []struct {
		name string
		k    *store.Keys
		want error
	}{
		{"other secret", keys(t, "acme", other), errdefs.ErrUnauthorized},
		{"right key", keys(t, "acme", secret), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newStore(t, be, tc.k, nil).Open(ctx, "v1")
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if tc.want != nil && !strings.Contains(err.Error(), "another store key") {
				t.Errorf("error %q does not say the key is wrong", err)
			}
		})
	}
}

// mutate applies f to the stored object name.
func mutate(t *testing.T, be store.Backend, name string, f func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	b, err := be.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, name, f(bytes.Clone(b))); err != nil {
		t.Fatal(err)
	}
}

func firstName(t *testing.T, be store.Backend, prefix string) string {
	t.Helper()
	var name string
	be.List(context.Background(), prefix, func(fi store.ObjectInfo) error { name = fi.Name; return nil })
	if name == "" {
		t.Fatalf("no object under %s", prefix)
	}
	return name
}

func TestTamper(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		object string // prefix of the object damaged
		damage func([]byte) []byte
		want   error
	}{
		{"chunk bit flip", "chunks/", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, errdefs.ErrCorrupt},
		{"chunk truncated", "chunks/", func(b []byte) []byte { return b[:len(b)-1] }, errdefs.ErrCorrupt},
		{"chunk empty", "chunks/", func(b []byte) []byte { return nil }, errdefs.ErrCorrupt},
		{"manifest bit flip", "manifests/", func(b []byte) []byte { b[len(b)-3] ^= 0x80; return b }, errdefs.ErrCorrupt},
		{"manifest truncated", "manifests/", func(b []byte) []byte { return b[:30] }, errdefs.ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := mem.New(0)
			s := newStore(t, be, keys(t, "acme", secret), nil)
			img := image(2*chunk, 3, 0)
			if _, err := s.Put(ctx, "v1", []store.FileSource{src("mem.img", img)}); err != nil {
				t.Fatal(err)
			}
			mutate(t, be, firstName(t, be, tc.object), tc.damage)
			sn, err := s.Open(ctx, "v1")
			if err == nil {
				f, _ := sn.File("mem.img")
				p := make([]byte, 2*chunk)
				var n int
				n, err = f.ReadAt(p, 0)
				if n > 0 {
					t.Errorf("returned %d bytes from a damaged chunk", n)
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if _, err := s.Verify(ctx); !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("Verify: %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("chunk swapped for another valid chunk", func(t *testing.T) {
		be := mem.New(0)
		s := newStore(t, be, keys(t, "acme", secret), nil)
		if _, err := s.Put(ctx, "v1", []store.FileSource{src("mem.img", image(2*chunk, 3, 0, 1))}); err != nil {
			t.Fatal(err)
		}
		var names []string
		be.List(ctx, "chunks/", func(fi store.ObjectInfo) error { names = append(names, fi.Name); return nil })
		other, _ := be.Get(ctx, names[1])
		be.Put(ctx, names[0], other)
		_, err := s.Verify(ctx)
		if !errors.Is(err, errdefs.ErrCorrupt) {
			t.Fatalf("Verify: %v, want ErrCorrupt", err)
		}
	})
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	be := mem.New(0)
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	s := newStore(t, be, keys(t, "acme", secret), func(c *store.Config) { c.GCGrace = time.Hour; c.Now = clock })
	a := image(4*chunk, 1, 0, 1, 2, 3)
	b := bytes.Clone(a)
	b[0] ^= 1 // shares chunks 1-3 with a
	for id, img := range map[string][]byte{"a": a, "b": b} {
		if _, err := s.Put(ctx, id, []store.FileSource{src("mem.img", img)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	// Chunk 0 of a is unreferenced now but young: kept.
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 0 || res.Young != 1 || res.Referenced != 4 {
		t.Fatalf("young GC = %+v, want 0 deleted, 1 young, 4 referenced", res)
	}
	// Age every object past the grace period.
	be.List(ctx, "", func(fi store.ObjectInfo) error { return be.SetModTime(fi.Name, now.Add(-2*time.Hour)) })
	res, err = s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 || res.Referenced != 4 {
		t.Fatalf("old GC = %+v, want 1 deleted, 4 referenced", res)
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Fatalf("Verify after GC: %v", err)
	}
	// An upload reusing an old chunk rewrites it, renewing its lease.
	res2, err := s.Put(ctx, "c", []store.FileSource{src("mem.img", b)})
	if err != nil {
		t.Fatal(err)
	}
	if res2.NewChunks != 4 {
		t.Fatalf("Put over old chunks: %+v, want all 4 rewritten", res2)
	}
}

func TestPutLeaseExpired(t *testing.T) {
	var ticks atomic.Int64
	clock := func() time.Time { return time.Unix(0, 0).Add(time.Duration(ticks.Add(1)) * time.Hour) }
	s := newStore(t, mem.New(0), keys(t, "acme", secret), func(c *store.Config) { c.GCGrace = time.Hour; c.Now = clock })
	_, err := s.Put(context.Background(), "v1", []store.FileSource{src("mem.img", image(chunk, 1, 0))})
	if !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout (no manifest published after the lease)", err)
	}
}

// gate is a backend whose Gets block until `want` of them are in flight at
// once, proving that Prefetch fetches in parallel, and which records the
// peak concurrency.
type gate struct {
	store.Backend
	want          int32
	inflight, max atomic.Int32
	once          sync.Once
	open          chan struct{}
}

func (g *gate) Get(ctx context.Context, name string) ([]byte, error) {
	n := g.inflight.Add(1)
	defer g.inflight.Add(-1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			break
		}
	}
	if n >= g.want {
		g.once.Do(func() { close(g.open) })
	}
	select {
	case <-g.open:
	case <-time.After(10 * time.Second): // only reached if fetches are serial
		return nil, fmt.Errorf("gate: only %d concurrent gets", g.max.Load())
	}
	return g.Backend.Get(ctx, name)
}

func TestPrefetch(t *testing.T) {
	ctx := context.Background()
	inner := mem.New(0)
	w := newStore(t, inner, keys(t, "acme", secret), nil)
	img := image(20*chunk, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15)
	if _, err := w.Put(ctx, "v1", []store.FileSource{src("mem.img", img)}); err != nil {
		t.Fatal(err)
	}
	g := &gate{Backend: inner, want: 4, open: make(chan struct{})}
	s := newStore(t, g, keys(t, "acme", secret), func(c *store.Config) { c.Concurrency = 4 })
	g.once.Do(func() { close(g.open) }) // manifest read is a single Get
	sn, err := s.Open(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	g.once = sync.Once{}
	g.open = make(chan struct{})
	// Ranges cover chunks 0-9 (data), 12 (zero) and 15 (data), with overlap.
	ranges := []store.Range{{0, 5 * chunk}, {4*chunk + 10, 6 * chunk}, {12 * chunk, 10}, {15*chunk + 1, 1}}
	if err := sn.Prefetch(ctx, "mem.img", ranges); err != nil {
		t.Fatal(err)
	}
	if got := g.max.Load(); got != 4 {
		t.Errorf("peak concurrent fetches = %d, want exactly Concurrency (4)", got)
	}
	c := s.Counters()
	if c.Fetched != 11 {
		t.Fatalf("Fetched = %d, want 11 data chunks", c.Fetched)
	}
	f, _ := sn.File("mem.img")
	p := make([]byte, len(img))
	if _, err := f.ReadAt(p, 0); err != nil || !bytes.Equal(p, img) {
		t.Fatalf("ReadAt after prefetch: %v, equal %v", err, bytes.Equal(p, img))
	}
	if c2 := s.Counters(); c2.Fetched != 11 || c2.CacheHits < 11 {
		t.Fatalf("reads after prefetch fetched again: %+v", c2)
	}
	if err := sn.Prefetch(ctx, "mem.img", []store.Range{{-1, 2}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("negative range: %v, want ErrInvalid", err)
	}
}

func TestConcurrentReaders(t *testing.T) {
	// A hammer: many readers over a cache too small for the file, so chunks
	// are evicted and refetched while others read them.
	ctx := context.Background()
	be := mem.New(0)
	s := newStore(t, be, keys(t, "acme", secret), func(c *store.Config) { c.CacheBytes = 3 * chunk })
	img := image(16*chunk, 9, 0, 2, 4, 6, 8, 10, 12, 14, 15)
	if _, err := s.Put(ctx, "v1", []store.FileSource{src("mem.img", img)}); err != nil {
		t.Fatal(err)
	}
	sn, err := s.Open(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := sn.File("mem.img")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 0))
			p := make([]byte, 3000)
			for range 200 {
				off := r.IntN(len(img) - len(p))
				if _, err := f.ReadAt(p, int64(off)); err != nil || !bytes.Equal(p, img[off:off+len(p)]) {
					t.Errorf("ReadAt(%d): %v or wrong data", off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestConfigAndIDs(t *testing.T) {
	k := keys(t, "acme", secret)
	tests := []struct {
		name string
		cfg  store.Config
	}{
		{"no backend", store.Config{Keys: k}},
		{"no keys", store.Config{Backend: mem.New(0)}},
		{"odd chunk size", store.Config{Backend: mem.New(0), Keys: k, ChunkSize: 5000}},
		{"huge chunk size", store.Config{Backend: mem.New(0), Keys: k, ChunkSize: 128 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := store.New(tc.cfg); !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	s := newStore(t, mem.New(0), k, nil)
	for _, id := range []string{"", "a/b", "..", "a b"} {
		if _, err := s.Put(context.Background(), id, nil); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Put(%q): %v, want ErrInvalid", id, err)
		}
	}
	dup := []store.FileSource{src("x", nil), src("x", nil)}
	if _, err := s.Put(context.Background(), "v", dup); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Put with repeated file names: %v, want ErrInvalid", err)
	}
}

// TestFileChunkSize puts a file cut into larger chunks than the store's
// (a working set): it is stored in fewer objects, reads back the same by
// ReadAt, Prefetch and Chunk, and the other file keeps the store's size.
func TestFileChunkSize(t *testing.T) {
	ctx := context.Background()
	be := mem.New(0)
	s := newStore(t, be, keys(t, "acme", secret), nil)
	img := image(4*chunk, 1, 0, 1, 2, 3)
	ws := image(5*chunk+4096, 2, 0, 1, 2, 3, 4, 5)
	wsSrc := src("ws.img", ws)
	wsSrc.ChunkSize = 4 * chunk
	res, err := s.Put(ctx, "snap", []store.FileSource{src("mem.img", img), wsSrc})
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != 4+2 {
		t.Fatalf("%d chunks, want 4 image chunks + 2 working-set chunks", res.Chunks)
	}
	s = newStore(t, be, keys(t, "acme", secret), nil) // nothing cached
	sn, err := s.Open(ctx, "snap")
	if err != nil {
		t.Fatal(err)
	}
	if fs := sn.Manifest().Files; fs[0].ChunkSize != chunk || fs[1].ChunkSize != 4*chunk {
		t.Fatalf("chunk sizes %d, %d; want %d, %d", fs[0].ChunkSize, fs[1].ChunkSize, chunk, 4*chunk)
	}
	if err := sn.Prefetch(ctx, "ws.img", []store.Range{{Off: 0, Len: int64(len(ws))}}); err != nil {
		t.Fatal(err)
	}
	if c := s.Counters(); c.Fetched != 2 {
		t.Fatalf("prefetch fetched %d chunks, want 2", c.Fetched)
	}
	f, _ := sn.File("ws.img")
	got := make([]byte, len(ws))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, ws) {
		t.Fatalf("ReadAt: %v, equal %v", err, bytes.Equal(got, ws))
	}
	for off := int64(0); off < int64(len(ws)); off += 4 * chunk {
		c, err := f.Chunk(ctx, off)
		if err != nil || !bytes.Equal(c, ws[off:min(off+4*chunk, int64(len(ws)))]) {
			t.Fatalf("Chunk(%d): %v", off, err)
		}
	}
	if _, err := f.Chunk(ctx, chunk); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("Chunk at an offset inside a chunk: %v, want ErrInvalid", err)
	}
	fi, _ := sn.File("mem.img")
	got = make([]byte, len(img))
	if _, err := fi.ReadAt(got, 0); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("image ReadAt: %v", err)
	}
}

// ChunkObjects names the stored chunks of a file, zero chunks left out,
// at their offsets, under the names the backend holds them by; a read
// with a Tally counts the backend (no tiers: the object store itself) and
// then the decrypted-chunk cache.
func TestChunkObjectsAndTally(t *testing.T) {
	ctx := context.Background()
	be := mem.New(0)
	s := newStore(t, be, keys(t, "acme", secret), nil)
	img := image(4*chunk+10, 3, 1, 4) // data in chunks 1 and 4 (the partial tail)
	if _, err := s.Put(ctx, "fn-1", []store.FileSource{src("mem.img", img)}); err != nil {
		t.Fatal(err)
	}
	sn, err := s.Open(ctx, "fn-1")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := sn.ChunkObjects("mem.img")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Off != chunk || objs[0].Size != chunk || objs[1].Off != 4*chunk || objs[1].Size != 10 {
		t.Fatalf("ChunkObjects = %+v, want chunks 1 and 4 (10 bytes)", objs)
	}
	for _, o := range objs {
		if _, err := be.Stat(ctx, o.Name); err != nil {
			t.Errorf("chunk object %s: %v", o.Name, err)
		}
	}
	if _, err := sn.ChunkObjects("nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ChunkObjects(nope): %v, want ErrNotFound", err)
	}
	f, err := sn.File("mem.img")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []store.TierBytes{{Remote: chunk + 10}, {Cache: chunk + 10}} {
		var tally store.Tally
		if _, err := f.ReadAtContext(store.WithTally(ctx, &tally), make([]byte, len(img)), 0); err != nil {
			t.Fatal(err)
		}
		if got := tally.Bytes(); got != want {
			t.Errorf("tally %+v, want %+v", got, want)
		}
	}
}
