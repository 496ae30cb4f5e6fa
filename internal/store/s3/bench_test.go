package s3_test

import (
	"context"
	"testing"

	"github.com/thaw-run/thaw/internal/store"
)

// BenchmarkFetch measures reading 16 MiB of data (256 chunks of 64 KiB,
// spread over the first 32 MiB) out of a 64 MiB sparse image from each
// tier: cold from S3 one chunk at a time (ReadAt), cold from S3 with
// Prefetch (parallel), and warm from the local disk tier.
func BenchmarkFetch(b *testing.B) {
	cfg := testConfig(b)
	ctx := context.Background()
	tb := b
	remote := newBackend(tb, cfg)
	defer func() {
		_ = remote.List(ctx, "", func(fi store.ObjectInfo) error { return remote.Delete(ctx, fi.Name) })
	}()
	var data []int
	for i := range 256 {
		data = append(data, i*2) // every other chunk of the first 32 MiB
	}
	img := image(1024*chunk, 1, data...)
	w := newWorker(tb, remote, b.TempDir(), 1<<30, secret)
	put(tb, w, "bench", img)
	ws := []store.Range{{Off: 0, Len: 512 * chunk}}

	read := func(b *testing.B, w *worker, prefetch bool) {
		sn, err := w.store.Open(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if prefetch {
			if err := sn.Prefetch(ctx, "mem.img", ws); err != nil {
				b.Fatal(err)
			}
		}
		f, _ := sn.File("mem.img")
		p := make([]byte, chunk)
		for off := int64(0); off < 512*chunk; off += chunk {
			if _, err := f.ReadAt(p, off); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("cold-s3-readat", func(b *testing.B) {
		for b.Loop() {
			read(b, newWorker(tb, remote, b.TempDir(), 1<<30, secret), false)
		}
		b.SetBytes(256 * chunk)
	})
	b.Run("cold-s3-prefetch", func(b *testing.B) {
		for b.Loop() {
			read(b, newWorker(tb, remote, b.TempDir(), 1<<30, secret), true)
		}
		b.SetBytes(256 * chunk)
	})
	b.Run("warm-disk", func(b *testing.B) {
		dir := b.TempDir()
		read(b, newWorker(tb, remote, dir, 1<<30, secret), false)
		for b.Loop() {
			read(b, newWorker(tb, remote, dir, 1<<30, secret), false) // fresh mem tier each time
		}
		b.SetBytes(256 * chunk)
	})
}
