package disk_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
	"github.com/thaw-run/thaw/internal/store/storetest"
)

func TestSharedConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		return disk.NewShared(t.TempDir(), disk.SharedOptions{})
	})
}

// A Shared view and the Backend owning the directory see each other's
// objects: the view reads what the Backend wrote, and the Backend, open
// meanwhile, reads what the view added. The view leaves the owner's
// temporary files alone, which opening a second Backend would not.
func TestSharedSeesTheOwnersLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "chunks/t/0123abcd", 7)
	inFlight := filepath.Join(dir, "tmp", "put-in-flight")
	if err := os.WriteFile(inFlight, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := disk.NewShared(dir, disk.SharedOptions{})
	got, err := v.Get(ctx, "chunks/t/0123abcd")
	if err != nil || len(got) != 7 || got[0] != 7 {
		t.Fatalf("view Get of the owner's object = %v, %v", got, err)
	}
	if fi, err := v.Stat(ctx, "chunks/t/0123abcd"); err != nil || fi.Size != 7 {
		t.Fatalf("view Stat = %+v, %v", fi, err)
	}
	if _, err := v.Get(ctx, "chunks/t/missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("view Get missing: %v, want ErrNotFound", err)
	}
	put(t, v, "chunks/t/fromview", 5)
	if got, err := b.Get(ctx, "chunks/t/fromview"); err != nil || len(got) != 5 {
		t.Fatalf("owner Get of the view's object = %v, %v", got, err)
	}
	if b.Used() != 12 {
		t.Fatalf("owner Used = %d, want 12 (the view's object adopted)", b.Used())
	}
	if _, err := os.Stat(inFlight); err != nil {
		t.Fatalf("the owner's temporary file: %v", err)
	}
}

// Put adds at most the budget, and a write that fails gives its bytes
// back.
func TestSharedBudget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v := disk.NewShared(dir, disk.SharedOptions{Budget: 10})
	put(t, v, "chunks/t/a", 6)
	if err := v.Put(ctx, "chunks/t/b", make([]byte, 6)); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("Put past the budget: %v, want ErrTooLarge", err)
	}
	// Make the write fail: tmp/ is a file.
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := v.Put(ctx, "chunks/t/c", make([]byte, 4)); err == nil || errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("Put with tmp/ a file: %v, want the write's error", err)
	}
	if err := os.Remove(filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	put(t, v, "chunks/t/c", 4) // the failed write's 4 bytes came back
	if err := v.Put(ctx, "chunks/t/d", []byte{1}); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("Put with the budget spent: %v, want ErrTooLarge", err)
	}
}
