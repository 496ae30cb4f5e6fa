package tiered_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/store/tiered"
)

// newReadOnly returns a read-only backend over remote with a memory tier
// and, behind it, the disk cache in dir seen through a Shared view, filled
// in the background: the pager child's reading of the worker's cache.
func newReadOnly(t *testing.T, remote store.Backend, dir string) *tiered.Backend {
	t.Helper()
	b, err := tiered.New(tiered.Config{
		Caches: []tiered.Tier{
			{Name: "mem", Backend: mem.New(1 << 20)},
			{Name: "disk", Backend: disk.NewShared(dir, disk.SharedOptions{}), Async: true},
		},
		Remote:   remote,
		ReadOnly: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestReadOnlyConformance(t *testing.T) {
	storetest.RunReadOnly(t, func(t *testing.T, objects map[string][]byte) store.Backend {
		remote := mem.New(0)
		for name, data := range objects {
			if err := remote.Put(context.Background(), name, data); err != nil {
				t.Fatal(err)
			}
		}
		return newReadOnly(t, remote, t.TempDir())
	})
}

// The read-only mode has no queue, and only it goes without one.
func TestReadOnlyConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  tiered.Config
	}{
		{"read-only with a queue", tiered.Config{Remote: mem.New(0), ReadOnly: true, QueueDir: t.TempDir()}},
		{"writing without a queue", tiered.Config{Remote: mem.New(0)}},
		{"no remote", tiered.Config{ReadOnly: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := tiered.New(tc.cfg); !errors.Is(err, errdefs.ErrInvalid) {
				if b != nil {
					b.Close()
				}
				t.Fatalf("New: %v, want ErrInvalid", err)
			}
		})
	}
}

// A read-only backend fills its caches as a writing one does; a damaged
// cache copy is skipped for the remote's good one, which replaces it; with
// only a damaged copy left the read fails with ErrCorrupt.
func TestReadOnlyFillsAndRepairsCache(t *testing.T) {
	ctx := context.Background()
	const name = "chunks/t/0123abcd"
	good := []byte("payload")
	check := func(p []byte) error {
		if !bytes.Equal(p, good) {
			return fmt.Errorf("bad copy: %w", errdefs.ErrCorrupt)
		}
		return nil
	}
	remote := mem.New(0)
	if err := remote.Put(ctx, name, good); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cache := disk.NewShared(dir, disk.SharedOptions{})
	read := func(want error) {
		t.Helper()
		b := newReadOnly(t, remote, dir) // a fresh memory tier each time
		got, err := b.GetVerified(ctx, name, check)
		if want != nil {
			if !errors.Is(err, want) {
				t.Fatalf("GetVerified = %q, %v; want %v", got, err, want)
			}
			return
		}
		if err != nil || !bytes.Equal(got, good) {
			t.Fatalf("GetVerified = %q, %v; want the good copy", got, err)
		}
		b.WaitFills()
		if got, err := cache.Get(ctx, name); err != nil || !bytes.Equal(got, good) {
			t.Fatalf("disk cache holds %q, %v; want the good copy", got, err)
		}
		if b.Pending() != 0 || b.Flush(ctx) != nil {
			t.Fatalf("a read-only backend has something queued: %d", b.Pending())
		}
	}
	read(nil) // from the remote, filling the cache
	if err := cache.Put(ctx, name, []byte("damaged")); err != nil {
		t.Fatal(err)
	}
	read(nil) // the damaged copy replaced
	if err := remote.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := cache.Put(ctx, name, []byte("damaged")); err != nil {
		t.Fatal(err)
	}
	read(errdefs.ErrCorrupt)
}
