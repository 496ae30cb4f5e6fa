package mem_test

import (
	"context"
	"errors"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return mem.New(4 << 20) })
}

func TestLRU(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		touch    string // read before the overflowing Put
		evicted  string
		retained []string
	}{
		{"oldest goes", "", "chunks/t/a", []string{"chunks/t/b", "chunks/t/c", "chunks/t/d"}},
		{"read refreshes", "chunks/t/a", "chunks/t/b", []string{"chunks/t/a", "chunks/t/c", "chunks/t/d"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mem.New(300)
			for _, n := range []string{"chunks/t/a", "chunks/t/b", "chunks/t/c"} {
				if err := b.Put(ctx, n, make([]byte, 100)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.touch != "" {
				if _, err := b.Get(ctx, tc.touch); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Put(ctx, "chunks/t/d", make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Get(ctx, tc.evicted); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("%s: err = %v, want evicted", tc.evicted, err)
			}
			for _, n := range tc.retained {
				if _, err := b.Get(ctx, n); err != nil {
					t.Errorf("%s: %v, want retained", n, err)
				}
			}
			if got := b.Used(); got != 300 {
				t.Errorf("Used = %d, want 300", got)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	b := mem.New(10)
	if err := b.Put(context.Background(), "chunks/t/big", make([]byte, 11)); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}
