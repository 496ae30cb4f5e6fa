package s3_test

// End-to-end tests of the chunk store over a real S3 server (MinIO, from
// scripts/minio.sh): tiers, dedup, tampering, outage, wrong key, full disk.

import (
	"bytes"
	"context"
	"errors"
	"github.com/thaw-run/thaw/internal/testminio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/tiered"
)

const chunk = 64 << 10

var secret = bytes.Repeat([]byte{7}, 32)

// worker is one process's view: its own caches and queue over a shared
// remote, as several workers pointing at one bucket.
type worker struct {
	mem   *mem.Backend
	disk  *disk.Backend
	tier  *tiered.Backend
	store *store.Store
}

func newWorker(t testing.TB, remote store.Backend, dir string, diskCap int64, sec []byte) *worker {
	t.Helper()
	w := &worker{mem: mem.New(256 << 10)}
	var err error
	if w.disk, err = disk.Open(filepath.Join(dir, "cache"), disk.Options{Capacity: diskCap}); err != nil {
		t.Fatal(err)
	}
	w.tier, err = tiered.New(tiered.Config{
		Caches:        []tiered.Tier{{Name: "mem", Backend: w.mem}, {Name: "disk", Backend: w.disk}},
		Remote:        remote,
		QueueDir:      filepath.Join(dir, "queue"),
		RetryInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.tier.Close() })
	k, err := store.NewKeys("acme", sec)
	if err != nil {
		t.Fatal(err)
	}
	w.store, err = store.New(store.Config{Backend: w.tier, Keys: k, ChunkSize: chunk, CacheBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func image(size int, seed uint64, dataChunks ...int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 3))
	for _, c := range dataChunks {
		for i := c * chunk; i < min((c+1)*chunk, size); i++ {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

func put(t testing.TB, w *worker, id string, img []byte) *store.PutResult {
	t.Helper()
	res, err := w.store.Put(context.Background(), id, []store.FileSource{{Name: "mem.img", Size: int64(len(img)), R: bytes.NewReader(img)}})
	if err != nil {
		t.Fatalf("Put %s: %v", id, err)
	}
	return res
}

func readAll(w *worker, id string, size int) ([]byte, error) {
	sn, err := w.store.Open(context.Background(), id)
	if err != nil {
		return nil, err
	}
	f, err := sn.File("mem.img")
	if err != nil {
		return nil, err
	}
	p := make([]byte, size)
	n, err := f.ReadAt(p, 0)
	return p[:n], err
}

func TestStoreOnS3(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	remote := newBackend(t, cfg)
	a := newWorker(t, remote, t.TempDir(), 8<<20, secret)
	img1 := image(32*chunk, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	img2 := bytes.Clone(img1)
	img2[3*chunk] ^= 0xff // shares 9 of 10 data chunks with img1
	put(t, a, "v1", img1)

	t.Run("dedup across snapshots", func(t *testing.T) {
		res := put(t, a, "v2", img2)
		if res.NewChunks != 1 || res.ReusedChunks != 9 || res.ZeroChunks != 22 {
			t.Fatalf("second snapshot %+v, want 1 new, 9 reused, 22 zero", res)
		}
		st, err := a.store.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Chunks != 11 || st.DedupRatio < 1.8 {
			t.Fatalf("Stats %+v, want 11 stored chunks and dedup ratio ~20/11", st)
		}
	})

	t.Run("second worker shares the bucket", func(t *testing.T) {
		b := newWorker(t, remote, t.TempDir(), 8<<20, secret)
		got, err := readAll(b, "v2", len(img2))
		if err != nil || !bytes.Equal(got, img2) {
			t.Fatalf("read v2 from another worker: %v", err)
		}
		if s := b.tier.TierStats(); s[len(s)-1].Hits != 11 { // 10 chunks + manifest
			t.Errorf("tier stats %+v, want 11 remote hits", s)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		b := newWorker(t, remote, t.TempDir(), 8<<20, bytes.Repeat([]byte{8}, 32))
		_, err := b.store.Open(ctx, "v1")
		if !errors.Is(err, errdefs.ErrUnauthorized) || !strings.Contains(err.Error(), "another store key") {
			t.Fatalf("Open with the wrong key: %v, want a clear ErrUnauthorized", err)
		}
	})

	t.Run("tampered disk cache is refetched", func(t *testing.T) {
		dir := t.TempDir()
		b := newWorker(t, remote, dir, 8<<20, secret)
		if _, err := readAll(b, "v1", len(img1)); err != nil { // fills the disk cache
			t.Fatal(err)
		}
		var damaged int
		b.disk.List(ctx, "chunks/", func(fi store.ObjectInfo) error {
			p := b.disk.Path(fi.Name)
			data, _ := os.ReadFile(p)
			data[len(data)/3] ^= 1
			damaged++
			return os.WriteFile(p, data, 0o600)
		})
		b2 := newWorker(t, remote, dir, 8<<20, secret) // restart: empty mem tier, damaged disk tier
		got, err := readAll(b2, "v1", len(img1))
		if err != nil || !bytes.Equal(got, img1) {
			t.Fatalf("read over a damaged disk cache: %v", err)
		}
		var corrupt int64
		for _, s := range b2.tier.TierStats() {
			corrupt += s.Corrupt
		}
		if damaged == 0 || corrupt != int64(damaged) {
			t.Fatalf("%d damaged cache entries, %d detected", damaged, corrupt)
		}
	})

	t.Run("disk cache full", func(t *testing.T) {
		b := newWorker(t, remote, t.TempDir(), 3*chunk, secret) // holds 2 of 10 chunks
		for range 2 {
			got, err := readAll(b, "v1", len(img1))
			if err != nil || !bytes.Equal(got, img1) {
				t.Fatalf("read with a full disk cache: %v", err)
			}
		}
		if b.disk.Used() > 3*chunk {
			t.Fatalf("disk cache holds %d bytes, capacity %d", b.disk.Used(), 3*chunk)
		}
	})

	t.Run("tampered bucket object", func(t *testing.T) {
		// Flip a byte of one chunk in the bucket itself, through the S3 API.
		var name string
		remote.List(ctx, "chunks/acme/", func(fi store.ObjectInfo) error { name = fi.Name; return nil })
		obj, err := remote.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(obj)
		bad[10] ^= 0x40
		if err := remote.Put(ctx, name, bad); err != nil {
			t.Fatal(err)
		}
		defer remote.Put(ctx, name, obj)
		b := newWorker(t, remote, t.TempDir(), 8<<20, secret)
		got, err := readAll(b, "v1", len(img1))
		if !errors.Is(err, errdefs.ErrCorrupt) {
			t.Fatalf("read with a tampered origin: %v, want ErrCorrupt", err)
		}
		if len(got) >= len(img1) {
			t.Fatal("returned the whole image despite a damaged chunk")
		}
		// The first worker's caches still hold the good copy: it reads fine,
		// but Verify checks the origin and reports the damage.
		if got, err := readAll(a, "v1", len(img1)); err != nil || !bytes.Equal(got, img1) {
			t.Fatalf("cached read: %v", err)
		}
		res, err := a.store.Verify(ctx)
		if !errors.Is(err, errdefs.ErrCorrupt) || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], name) {
			t.Fatalf("Verify = %+v, %v; want one problem naming %s", res, err, name)
		}
	})

	t.Run("gc", func(t *testing.T) {
		if err := a.store.Delete(ctx, "v2"); err != nil {
			t.Fatal(err)
		}
		res, err := a.store.GC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 0 || res.Young != 1 || res.Referenced != 10 {
			t.Fatalf("GC %+v, want v2's unique chunk kept as young, 10 referenced", res)
		}
		if _, err := a.store.Verify(ctx); err != nil {
			t.Fatalf("Verify after GC: %v", err)
		}
	})
}

// privateMinIO starts a MinIO of the test's own (so stopping it disturbs no
// other test) and returns its config and a control function.
func privateMinIO(t *testing.T) (s3.Config, func(cmd string)) {
	cfg := testConfig(t)
	minio := testminio.Private(t)
	cfg.Endpoint = minio.Endpoint()
	return cfg, minio.Run
}

func TestOutage(t *testing.T) {
	cfg, ctl := privateMinIO(t)
	ctx := context.Background()
	remote, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	img1 := image(12*chunk, 11, 0, 1, 2, 5)
	img2 := image(12*chunk, 12, 0, 3, 4, 9)
	dir := t.TempDir()
	w := newWorker(t, remote, dir, 8<<20, secret)
	put(t, w, "v1", img1)
	if _, err := readAll(w, "v1", len(img1)); err != nil {
		t.Fatal(err)
	}

	ctl("stop")
	t.Run("reads from local tiers", func(t *testing.T) {
		w2 := newWorker(t, remote, dir, 8<<20, secret) // restarted worker: disk tier only
		got, err := readAll(w2, "v1", len(img1))
		if err != nil || !bytes.Equal(got, img1) {
			t.Fatalf("read while the store is down: %v", err)
		}
		other := newWorker(t, remote, t.TempDir(), 8<<20, secret)
		if _, err := readAll(other, "v1", len(img1)); !errors.Is(err, errdefs.ErrUnavailable) {
			t.Fatalf("uncached read while down: %v, want ErrUnavailable", err)
		}
	})
	t.Run("writes are queued", func(t *testing.T) {
		res := put(t, w, "v2", img2)
		if res.NewChunks != 4 {
			t.Fatalf("%+v", res)
		}
		if w.tier.Pending() != 5 {
			t.Fatalf("Pending = %d, want 4 chunks + manifest", w.tier.Pending())
		}
		if _, err := w.store.GC(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
			t.Fatalf("GC while down: %v, want ErrUnavailable", err)
		}
	})
	w.tier.Close()
	// The worker restarts while the store is still down, then the store
	// comes back on the same address with the same data.
	w = newWorker(t, remote, dir, 8<<20, secret)
	ctl("start")
	if err := w.tier.Flush(ctx); err != nil {
		t.Fatalf("Flush after the store returned: %v", err)
	}
	fresh := newWorker(t, remote, t.TempDir(), 8<<20, secret)
	for id, img := range map[string][]byte{"v1": img1, "v2": img2} {
		got, err := readAll(fresh, id, len(img))
		if err != nil || !bytes.Equal(got, img) {
			t.Fatalf("%s from the bucket after recovery: %v", id, err)
		}
	}
	if _, err := fresh.store.Verify(ctx); err != nil {
		t.Fatalf("Verify after recovery: %v", err)
	}
}
