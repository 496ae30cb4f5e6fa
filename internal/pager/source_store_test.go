package pager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
)

// A store source opens its store with the pager's StoreOpener, once per
// store description, and serves the file's bytes, its zero chunks as
// zero; a pager given no opener refuses store sources.
func TestStoreSource(t *testing.T) {
	ctx := context.Background()
	cfg := stack.Config{Tenant: "t", Secret: storetest.Secret(t), Dir: t.TempDir(), ChunkSize: 4 * pageSize}
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	img := make([]byte, 12*pageSize) // chunks: data, zero, data
	for i := range 4 * pageSize {
		img[i], img[8*pageSize+i] = byte(i), byte(i>>8)
	}
	if _, err := h.Store.Put(ctx, "s", []store.FileSource{{Name: "memory.img", Size: int64(len(img)), R: bytes.NewReader(img)}}); err != nil {
		t.Fatal(err)
	}

	opened := 0
	stores := newStoreCache(func(config json.RawMessage) (*store.Store, error) {
		opened++
		return stack.OpenReaderJSON(config)
	})
	spec, err := StoreSource(StoreParams{Store: cfg.JSON(), Snapshot: "s", File: "memory.img"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		src, err := openSource(KindStore, nil, spec.Params, stores)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, src.Size())
		if _, err := src.ReadAt(got, 0); err != nil || !bytes.Equal(got, img) {
			t.Fatalf("read through the store source: %v, or the bytes differ", err)
		}
		if src.Zero(0) || !src.Zero(4*pageSize) || src.Zero(8*pageSize) {
			t.Fatal("Zero does not follow the manifest's zero chunk")
		}
	}
	if opened != 1 {
		t.Fatalf("the store was opened %d times, want once", opened)
	}
	if _, err := openSource(KindStore, nil, spec.Params, newStoreCache(nil)); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("a store source without an opener: %v, want ErrInvalid", err)
	}
}
