package tiered_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/store/tiered"
)

// switchable is a remote that can be taken down, and records the order of
// successful Puts.
type switchable struct {
	store.Backend
	down atomic.Bool
	mu   sync.Mutex
	puts []string
}

func (s *switchable) err() error {
	if s.down.Load() {
		return fmt.Errorf("remote: connection refused: %w", errdefs.ErrUnavailable)
	}
	return nil
}

func (s *switchable) Get(ctx context.Context, n string) ([]byte, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Backend.Get(ctx, n)
}

func (s *switchable) Put(ctx context.Context, n string, d []byte) error {
	if err := s.err(); err != nil {
		return err
	}
	s.mu.Lock()
	s.puts = append(s.puts, n)
	s.mu.Unlock()
	return s.Backend.Put(ctx, n, d)
}

func (s *switchable) Stat(ctx context.Context, n string) (store.ObjectInfo, error) {
	if err := s.err(); err != nil {
		return store.ObjectInfo{}, err
	}
	return s.Backend.Stat(ctx, n)
}

func (s *switchable) Delete(ctx context.Context, n string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Backend.Delete(ctx, n)
}

func (s *switchable) List(ctx context.Context, p string, fn func(store.ObjectInfo) error) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Backend.List(ctx, p, fn)
}

type rig struct {
	t      *testing.T
	mem    *mem.Backend
	disk   *disk.Backend
	remote *switchable
	dir    string
	b      *tiered.Backend
}

func newRig(t *testing.T, memCap, diskCap int64) *rig {
	r := &rig{t: t, remote: &switchable{Backend: mem.New(0)}, dir: t.TempDir()}
	r.open(memCap, diskCap)
	return r
}

// open (re)creates the tiers over the same directories, as a restart does.
func (r *rig) open(memCap, diskCap int64) {
	r.t.Helper()
	if r.b != nil {
		r.b.Close()
	}
	var err error
	r.mem = mem.New(memCap)
	if r.disk, err = disk.Open(r.dir+"/cache", disk.Options{Capacity: diskCap}); err != nil {
		r.t.Fatal(err)
	}
	r.b, err = tiered.New(tiered.Config{
		Caches:   []tiered.Tier{{Name: "mem", Backend: r.mem}, {Name: "disk", Backend: r.disk}},
		Remote:   r.remote,
		QueueDir: r.dir + "/queue",
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { r.b.Close() })
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return newRig(t, 4<<20, 4<<20).b })
}

// The view of the authoritative copies (Verify and GC read through it) is
// a backend too.
func TestOriginConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return newRig(t, 4<<20, 4<<20).b.Origin() })
}

func stats(b *tiered.Backend) map[string]store.TierStat {
	m := map[string]store.TierStat{}
	for _, s := range b.TierStats() {
		m[s.Tier] = s
	}
	return m
}

func TestReadFillsUpperTiers(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 1<<20, 1<<20)
	r.remote.Backend.Put(ctx, "chunks/t/a", []byte("payload"))
	for i, want := range []string{"remote", "mem", "mem"} {
		if _, err := r.b.Get(ctx, "chunks/t/a"); err != nil {
			t.Fatal(err)
		}
		if got := stats(r.b)[want].Hits; got == 0 {
			t.Fatalf("read %d: no hit on %s: %+v", i, want, r.b.TierStats())
		}
	}
	// Dropping mem (a restart) leaves the disk tier to answer.
	r.open(1<<20, 1<<20)
	if _, err := r.b.Get(ctx, "chunks/t/a"); err != nil {
		t.Fatal(err)
	}
	if s := stats(r.b); s["disk"].Hits != 1 || s["remote"].Hits != 0 {
		t.Fatalf("after restart: %+v, want one disk hit", r.b.TierStats())
	}
}

func TestCorruptCacheEntryIsDroppedAndRefetched(t *testing.T) {
	ctx := context.Background()
	good := []byte("good-object")
	check := func(b []byte) error {
		if !bytes.Equal(b, good) {
			return fmt.Errorf("bad copy: %w", errdefs.ErrCorrupt)
		}
		return nil
	}
	tests := []struct {
		name   string
		damage func(r *rig)
	}{
		{"mem", func(r *rig) { r.mem.Put(ctx, "chunks/t/a", []byte("evil")) }},
		{"disk", func(r *rig) { r.mem.Delete(ctx, "chunks/t/a"); r.disk.Put(ctx, "chunks/t/a", []byte("trunc")) }},
		{"both", func(r *rig) { r.mem.Put(ctx, "chunks/t/a", []byte("x")); r.disk.Put(ctx, "chunks/t/a", []byte("y")) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 1<<20, 1<<20)
			if err := r.b.Put(ctx, "chunks/t/a", good); err != nil {
				t.Fatal(err)
			}
			tc.damage(r)
			got, err := r.b.GetVerified(ctx, "chunks/t/a", check)
			if err != nil || !bytes.Equal(got, good) {
				t.Fatalf("GetVerified = %q, %v; want the remote's good copy", got, err)
			}
			for _, c := range []store.Backend{r.mem, r.disk} {
				if b, err := c.Get(ctx, "chunks/t/a"); err != nil || !bytes.Equal(b, good) {
					t.Fatalf("cache not refilled with the good copy: %q, %v", b, err)
				}
			}
			var corrupt int64
			for _, s := range r.b.TierStats() {
				corrupt += s.Corrupt
			}
			if corrupt == 0 {
				t.Error("no corrupt copy counted")
			}
		})
	}
	t.Run("remote corrupt too", func(t *testing.T) {
		r := newRig(t, 1<<20, 1<<20)
		r.remote.Backend.Put(ctx, "chunks/t/a", []byte("evil"))
		if _, err := r.b.GetVerified(ctx, "chunks/t/a", check); !errors.Is(err, errdefs.ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
}

func TestRemoteDown(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 1<<20, 1<<20)
	if err := r.b.Put(ctx, "chunks/t/cached", []byte("c")); err != nil {
		t.Fatal(err)
	}
	r.remote.Backend.Put(ctx, "chunks/t/remote-only", []byte("r"))
	r.remote.down.Store(true)

	// Reads: local tiers answer; what only the remote has is ErrUnavailable.
	if b, err := r.b.Get(ctx, "chunks/t/cached"); err != nil || string(b) != "c" {
		t.Fatalf("cached read while down: %q, %v", b, err)
	}
	if _, err := r.b.Get(ctx, "chunks/t/remote-only"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("remote-only read while down: %v, want ErrUnavailable", err)
	}
	// Writes: queued durably, readable, in order.
	order := []string{"chunks/t/1", "chunks/t/2", "manifests/t/snap"}
	for _, n := range order {
		if err := r.b.Put(ctx, n, []byte(n)); err != nil {
			t.Fatalf("Put while down: %v", err)
		}
	}
	if r.b.Pending() != 3 {
		t.Fatalf("Pending = %d, want 3", r.b.Pending())
	}
	if err := r.b.Flush(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Flush while down: %v, want ErrUnavailable", err)
	}
	// Restart the worker: the queue survives; caches are gone.
	r.open(1<<20, 1<<20)
	r.disk.Delete(ctx, "chunks/t/1")
	if b, err := r.b.Get(ctx, "chunks/t/1"); err != nil || string(b) != "chunks/t/1" {
		t.Fatalf("queued object after restart: %q, %v", b, err)
	}
	if r.b.Pending() != 3 {
		t.Fatalf("Pending after restart = %d, want 3", r.b.Pending())
	}
	// The remote returns; once anything is queued, new writes queue behind.
	r.remote.down.Store(false)
	if err := r.b.Put(ctx, "chunks/t/3", []byte("3")); err != nil {
		t.Fatal(err)
	}
	if err := r.b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if r.b.Pending() != 0 {
		t.Fatalf("Pending after flush = %d", r.b.Pending())
	}
	want := fmt.Sprint(append([]string{"chunks/t/cached"}, append(order, "chunks/t/3")...))
	if got := fmt.Sprint(r.remote.puts); got != want {
		t.Fatalf("remote put order = %v, want %v (manifest after its chunks)", got, want)
	}
	for _, n := range append(order, "chunks/t/3") {
		if _, err := r.remote.Backend.Get(ctx, n); err != nil {
			t.Fatalf("%s not uploaded: %v", n, err)
		}
	}
}

func TestDiskFullNeverFailsRead(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 1000, 5000) // both tiers far smaller than the data
	const n = 40
	for i := range n {
		r.remote.Backend.Put(ctx, fmt.Sprintf("chunks/t/%02d", i), bytes.Repeat([]byte{byte(i)}, 900))
	}
	for round := range 2 {
		for i := range n {
			b, err := r.b.Get(ctx, fmt.Sprintf("chunks/t/%02d", i))
			if err != nil || len(b) != 900 || b[0] != byte(i) {
				t.Fatalf("round %d read %d: %v", round, i, err)
			}
		}
	}
	if r.disk.Used() > 5000 || r.mem.Used() > 1000 {
		t.Fatalf("caches over capacity: disk %d, mem %d", r.disk.Used(), r.mem.Used())
	}
	// An object larger than a cache tier is still served.
	r.remote.Backend.Put(ctx, "chunks/t/big", make([]byte, 8000))
	if _, err := r.b.Get(ctx, "chunks/t/big"); err != nil {
		t.Fatalf("object larger than every cache: %v", err)
	}
}

// A read whose context carries a store.Tally adds the bytes to the class
// of the tier that served it, apart from the process-wide counters: the
// remote first, then the caches it filled; a read without one counts
// nowhere else.
func TestTallyPerRead(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 1<<20, 1<<20)
	r.remote.Backend.Put(ctx, "chunks/t/a", []byte("payload")) // 7 bytes
	var first, second store.Tally
	if _, err := r.b.Get(store.WithTally(ctx, &first), "chunks/t/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.Get(store.WithTally(ctx, &second), "chunks/t/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.Get(ctx, "chunks/t/a"); err != nil {
		t.Fatal(err)
	}
	if got := first.Bytes(); got != (store.TierBytes{Remote: 7}) || got.Most() != store.TierRemote {
		t.Errorf("first read's tally %+v, want 7 remote bytes", got)
	}
	if got := second.Bytes(); got != (store.TierBytes{Cache: 7}) || got.Most() != store.TierCache {
		t.Errorf("second read's tally %+v, want 7 cache bytes (the mem tier)", got)
	}
	if got := store.TallyOf(ctx); got != nil {
		t.Errorf("TallyOf a bare context = %v, want nil", got)
	}
}
