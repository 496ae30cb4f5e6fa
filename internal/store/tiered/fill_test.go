package tiered_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/tiered"
)

// gatedCache is a cache tier whose Puts wait for the gate, so a test can
// hold the background filler in the middle of a write.
type gatedCache struct {
	store.Backend
	entered chan string
	gate    chan struct{}
}

func (g *gatedCache) Put(ctx context.Context, name string, data []byte) error {
	g.entered <- name
	<-g.gate
	return g.Backend.Put(ctx, name, data)
}

func newAsync(t *testing.T, cache store.Backend, maxPending int64) (*tiered.Backend, store.Backend) {
	t.Helper()
	remote := mem.New(0)
	b, err := tiered.New(tiered.Config{
		Caches:         []tiered.Tier{{Name: "disk", Backend: cache, Async: true}},
		Remote:         remote,
		QueueDir:       filepath.Join(t.TempDir(), "queue"),
		MaxPendingFill: maxPending,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, remote
}

func TestAsyncFillLands(t *testing.T) {
	ctx := context.Background()
	d, err := disk.Open(t.TempDir(), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, remote := newAsync(t, d, 0)
	good := []byte("good-object")
	check := func(p []byte) error {
		if !bytes.Equal(p, good) {
			return fmt.Errorf("bad copy: %w", errdefs.ErrCorrupt)
		}
		return nil
	}
	remote.Put(ctx, "chunks/t/a", good)
	if got, err := b.GetVerified(ctx, "chunks/t/a", check); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("GetVerified = %q, %v", got, err)
	}
	b.WaitFills()
	if got, err := d.Get(ctx, "chunks/t/a"); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("disk tier after the fill: %q, %v", got, err)
	}
	if fs := b.FillStats(); fs.Written != 1 || fs.Pending != 0 {
		t.Fatalf("fill stats %+v, want one written", fs)
	}

	// A damaged cached copy is dropped, the remote's good copy returned,
	// and the good copy refills the cache in the background.
	d.Put(ctx, "chunks/t/a", []byte("evil"))
	if got, err := b.GetVerified(ctx, "chunks/t/a", check); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("GetVerified over a damaged cache copy = %q, %v", got, err)
	}
	b.WaitFills()
	if got, err := d.Get(ctx, "chunks/t/a"); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("disk tier after the refill: %q, %v", got, err)
	}
	if s := stats(b); s["disk"].Corrupt != 1 || s["remote"].Hits != 2 {
		t.Fatalf("tier stats %+v, want one corrupt disk copy and two remote reads", b.TierStats())
	}
}

func TestAsyncFillBoundedAndCancelled(t *testing.T) {
	ctx := context.Background()
	g := &gatedCache{Backend: mem.New(0), entered: make(chan string, 16), gate: make(chan struct{})}
	b, remote := newAsync(t, g, 10)
	for _, n := range []string{"a", "b", "c", "d"} {
		remote.Put(ctx, "chunks/t/"+n, []byte("12345"))
	}
	remote.Put(ctx, "manifests/t/m", []byte("old"))

	get := func(name string) {
		t.Helper()
		if _, err := b.Get(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	get("chunks/t/a")
	if n := <-g.entered; n != "chunks/t/a" { // the filler now holds a, 5 bytes
		t.Fatalf("filling %s", n)
	}
	get("chunks/t/b")    // queued: 5 bytes pending
	get("manifests/t/m") // queued: 8 bytes
	get("chunks/t/c")    // 13 > 10: dropped
	if fs := b.FillStats(); fs.Dropped != 1 {
		t.Fatalf("fill stats %+v, want one dropped", fs)
	}
	// Deleting b cancels its queued fill; a new manifest replaces the
	// queued fill of the old one.
	done := make(chan error, 2)
	go func() { done <- b.Delete(ctx, "chunks/t/b") }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { done <- b.Put(ctx, "manifests/t/m", []byte("new")) }()
	// The Put's own (synchronous) fill reaches the cache while a's fill
	// is still held, so the queued fill of the old manifest was cancelled.
	if n := <-g.entered; n != "manifests/t/m" {
		t.Fatalf("filling %s, want the new manifest's write-through", n)
	}
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.WaitFills()
	for name, want := range map[string]string{"chunks/t/a": "12345", "manifests/t/m": "new"} {
		if got, err := g.Backend.Get(ctx, name); err != nil || string(got) != want {
			t.Errorf("cache %s = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"chunks/t/b", "chunks/t/c"} {
		if _, err := g.Backend.Get(ctx, name); err == nil {
			t.Errorf("cache holds %s, whose fill was cancelled or dropped", name)
		}
	}
}
