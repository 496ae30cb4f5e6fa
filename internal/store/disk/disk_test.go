package disk_test

import (
	"bytes"
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

func TestConformance(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(map[bool]string{false: "NoSync", true: "Sync"}[sync], func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Backend {
				b, err := disk.Open(t.TempDir(), disk.Options{Capacity: 4 << 20, Sync: sync})
				if err != nil {
					t.Fatal(err)
				}
				return b
			})
		})
	}
}

func put(t *testing.T, b store.Backend, name string, n int) {
	t.Helper()
	if err := b.Put(context.Background(), name, bytes.Repeat([]byte{byte(n)}, n)); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
}

func present(b store.Backend, name string) bool {
	_, err := b.Get(context.Background(), name)
	return err == nil
}

func TestLRUSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := disk.Open(dir, disk.Options{Capacity: 300})
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "chunks/t/a", 100)
	put(t, b, "chunks/t/b", 100)
	put(t, b, "chunks/t/c", 100)
	if !present(b, "chunks/t/a") { // a is now the most recently used
		t.Fatal("a missing")
	}
	// A leftover temporary file from a crash must be cleaned up.
	if err := os.WriteFile(filepath.Join(dir, "tmp", "put-junk"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	b2, err := disk.Open(dir, disk.Options{Capacity: 300})
	if err != nil {
		t.Fatal(err)
	}
	if got := b2.Used(); got != 300 {
		t.Fatalf("reopened Used = %d, want 300", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp", "put-junk")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file survived Open: %v", err)
	}
	put(t, b2, "chunks/t/d", 100)
	tests := []struct {
		name string
		want bool
	}{{"chunks/t/a", true}, {"chunks/t/b", false}, {"chunks/t/c", true}, {"chunks/t/d", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := present(b2, tc.name); got != tc.want {
				t.Errorf("present = %v, want %v (b is least recently used across the restart)", got, tc.want)
			}
		})
	}
}

func TestShrinkOnOpen(t *testing.T) {
	dir := t.TempDir()
	b, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"chunks/t/a", "chunks/t/b", "chunks/t/c"} {
		put(t, b, n, 100)
	}
	b2, err := disk.Open(dir, disk.Options{Capacity: 150})
	if err != nil {
		t.Fatal(err)
	}
	if got := b2.Used(); got > 150 {
		t.Fatalf("Used = %d after reopening with capacity 150", got)
	}
}

func TestTooLarge(t *testing.T) {
	b, err := disk.Open(t.TempDir(), disk.Options{Capacity: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), "chunks/t/x", make([]byte, 11)); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestFileRemovedUnderneath(t *testing.T) {
	b, err := disk.Open(t.TempDir(), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "chunks/t/a", 10)
	if err := os.Remove(b.Path("chunks/t/a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(context.Background(), "chunks/t/a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if b.Used() != 0 {
		t.Fatalf("Used = %d, want the vanished file forgotten", b.Used())
	}
}

// An object another process put into the directory after Open through a
// Shared view (the pager child filling the worker's cache) is adopted on
// its first Get:
// counted against the capacity and evicted like the backend's own.
func TestAdoptsObjectsWrittenByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := disk.Open(dir, disk.Options{Capacity: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "chunks/t/own", []byte("123456")); err != nil {
		t.Fatal(err)
	}
	if err := disk.NewShared(dir, disk.SharedOptions{}).Put(ctx, "chunks/t/other", []byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "chunks/t/other")
	if err != nil || string(got) != "abcdef" {
		t.Fatalf("Get of the other process's object = %q, %v", got, err)
	}
	if used := b.Used(); used != 6 {
		t.Fatalf("used %d, want 6: the adopted object evicts the older one", used)
	}
	if _, err := b.Get(ctx, "chunks/t/own"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("evicted object: %v, want ErrNotFound", err)
	}
	if _, err := b.Get(ctx, "chunks/t/missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing object: %v, want ErrNotFound", err)
	}
}

// Contains finds the backend's own objects and those another process put
// into the directory (indexing them, so that they count against the
// capacity), reads nothing and counts no use: the least recently used
// object is still the one evicted.
func TestContains(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := disk.Open(dir, disk.Options{Capacity: 12})
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "chunks/t/old", 4)
	put(t, b, "chunks/t/new", 4)
	if err := disk.NewShared(dir, disk.SharedOptions{}).Put(ctx, "chunks/t/other", []byte("abcd")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"chunks/t/old": true, "chunks/t/new": true, "chunks/t/other": true,
		"chunks/t/missing": false, "../escape": false} {
		if got := b.Contains(name); got != want {
			t.Errorf("Contains(%s) = %v, want %v", name, got, want)
		}
	}
	if used := b.Used(); used != 12 {
		t.Fatalf("used %d, want 12: the other process's object indexed", used)
	}
	put(t, b, "chunks/t/more", 4)
	if present(b, "chunks/t/old") || !present(b, "chunks/t/new") {
		t.Fatal("Contains counted as a use: the oldest object was not the one evicted")
	}
}
