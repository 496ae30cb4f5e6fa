package store_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/mem"
)

// ForEachChunk visits every non-zero chunk of a file once, with its byte
// range; an error stops the walk and is returned; a panic in fn becomes an
// ErrCorrupt error of the walk; a missing file is ErrNotFound.
func TestForEachChunk(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, mem.New(0), keys(t, "t", secret), nil)
	img := image(5*chunk+100, 1, 0, 2, 3, 5) // chunk 5 is the 100-byte tail
	if _, err := s.Put(ctx, "s", []store.FileSource{src("mem.img", img)}); err != nil {
		t.Fatal(err)
	}
	sn, err := s.Open(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	f, err := sn.File("mem.img")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := make([]byte, len(img))
	seen := map[int64]int64{}
	err = sn.ForEachChunk(ctx, "mem.img", 3, func(ctx context.Context, off, size int64) error {
		if _, err := f.ReadAtContext(ctx, got[off:off+size], off); err != nil {
			return err
		}
		mu.Lock()
		seen[off] += size
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]int64{0: chunk, 2 * chunk: chunk, 3 * chunk: chunk, 5 * chunk: 100}
	if len(seen) != len(want) {
		t.Fatalf("visited %v, want %v", seen, want)
	}
	for off, size := range want {
		if seen[off] != size {
			t.Fatalf("visited %v, want %v", seen, want)
		}
	}
	if !bytes.Equal(got, img) {
		t.Fatal("the chunks read through the walk differ from the image")
	}

	stop := errors.New("stop")
	if err := sn.ForEachChunk(ctx, "mem.img", 1, func(context.Context, int64, int64) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("walk with a failing fn: %v, want its error", err)
	}
	if err := sn.ForEachChunk(ctx, "mem.img", 2, func(_ context.Context, off, _ int64) error {
		_ = got[off+int64(len(img))] // out of range
		return nil
	}); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("walk with a panicking fn: %v, want ErrCorrupt", err)
	}
	if err := sn.ForEachChunk(ctx, "none", 1, func(context.Context, int64, int64) error { return nil }); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("walk of a missing file: %v, want ErrNotFound", err)
	}
}
