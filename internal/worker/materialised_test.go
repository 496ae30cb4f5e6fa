package worker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// TestStoreMaterialisedImageTampered: a store-only snapshot restored with
// mmap maps an image materialised under DATA/store-images. Tampered on
// disk (same size, so reused), the worker's check after the call catches
// it: the answer is recomputed on a cold boot, the fallback counted, the
// file deleted; the next mmap restore re-materialises a clean one. An eager
// restore reads authenticated chunks, never that file.
func TestStoreMaterialisedImageTampered(t *testing.T) {
	w := openStoreWorker(t, t.TempDir(), dirStore(t))
	want := deployPublished(t, w)
	if err := os.RemoveAll(w.snapDir("hello")); err != nil {
		t.Fatal(err)
	}
	res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Mmap})
	if tm := res.Timing; tm.Source != SourceStore || tm.Fallback != "" || !bytes.Equal(res.Response.Body, want) {
		t.Fatalf("clean mmap restore from the store: source %q fallback %q body %q", tm.Source, tm.Fallback, res.Response.Body)
	}
	imgs, _ := filepath.Glob(filepath.Join(w.dir, storeImagesDir, "*.img"))
	if len(imgs) != 1 {
		t.Fatalf("materialised images: %v", imgs)
	}
	b, err := os.ReadFile(imgs[0])
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for p := 0; p+snapshot.PageSize <= len(b); p += snapshot.PageSize {
		if !bytes.Equal(b[p:p+snapshot.PageSize], make([]byte, snapshot.PageSize)) {
			b[p+snapshot.PageSize-1] ^= 0x01
			n++
		}
	}
	if n == 0 {
		t.Fatal("no data page in the materialised image")
	}
	// The first instance is closed before the tamper: idle in the pool, it
	// still maps the file, and its idle call verifies its pages, so it
	// could find the damage first and drop the image (CI saw that once).
	// In place, without truncating: a mapped image must never shrink (thaw
	// replaces images, it never rewrites one; docs/restore.md, mmap).
	if err := w.Evict(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(imgs[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	before := testutil.ToFloat64(w.metrics.fallbacks.WithLabelValues("hello", string(restore.Mmap)))
	res = invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: restore.Mmap})
	if res.Timing.Fallback == "" || res.Timing.StartKind != "cold" {
		t.Fatalf("mmap restore of a tampered image: start %q, fallback %q; want a cold retry", res.Timing.StartKind, res.Timing.Fallback)
	}
	if !bytes.Equal(res.Response.Body, want) {
		t.Fatalf("answer %q, want %q", res.Response.Body, want)
	}
	if got := testutil.ToFloat64(w.metrics.fallbacks.WithLabelValues("hello", string(restore.Mmap))); got != before+1 {
		t.Fatalf("mmap fallbacks %v, want %v", got, before+1)
	}
	if _, err := os.Stat(imgs[0]); !os.IsNotExist(err) {
		t.Fatalf("tampered image still there: %v", err)
	}

	for _, mode := range []restore.Mode{restore.Eager, restore.Mmap} {
		res := invoke(t, w, "hello", get("/?name=thaw"), InvokeOptions{Mode: mode})
		if tm := res.Timing; tm.Fallback != "" || tm.Source != SourceStore || !bytes.Equal(res.Response.Body, want) {
			t.Fatalf("%s after the tamper: source %q fallback %q body %q", mode, tm.Source, tm.Fallback, res.Response.Body)
		}
	}
}
