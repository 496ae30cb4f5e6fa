package disk_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/disk"
)

// TestOversizedObjectRefusedUnread: an object file larger than any object
// the store writes (damaged, or planted in the cache directory) is refused
// without being read into memory, indexed or not.
func TestOversizedObjectRefusedUnread(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "chunks/t/ab", []byte("small")); err != nil {
		t.Fatal(err)
	}
	// The indexed object, and one the index has never seen, both grown
	// (sparsely) past the limit.
	for _, rel := range []string{"objects/ab/chunks~t~ab", "objects/cd/chunks~t~cd"} {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(4 * store.MaxObjectSize); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	for _, name := range []string{"chunks/t/ab", "chunks/t/cd"} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := b.Get(ctx, name)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%s: an oversized object was returned", name)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
			t.Fatalf("%s: Get allocated %d bytes for an object it must refuse unread", name, d)
		}
	}
	if _, err := atomicfile.ReadFile(filepath.Join(dir, "objects/ab/chunks~t~ab"), store.MaxObjectSize); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("ReadFile: %v, want ErrCorrupt", err)
	}
}
