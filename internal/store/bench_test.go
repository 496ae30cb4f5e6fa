package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/mem"
)

// BenchmarkPutSparse256MiB puts a 256 MiB memory image holding 16 MiB of
// data (the rest zero) with the default 512 KiB chunks into memory:
// the cost of chunking, hashing, key derivation and encryption.
func BenchmarkPutSparse256MiB(b *testing.B) {
	const size, cs = 256 << 20, store.DefaultChunkSize
	img := make([]byte, size)
	for i := 0; i < 16<<20; i++ {
		img[(i/cs)*cs*16+i%cs] = byte(i*31 + i>>9) // 32 data chunks spread over the image
	}
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		s := newStore(b, mem.New(0), keys(b, "acme", secret), func(c *store.Config) { c.ChunkSize = cs })
		if _, err := s.Put(context.Background(), "v", []store.FileSource{{Name: "mem.img", Size: size, R: bytes.NewReader(img)}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadAtDecrypt reads 16 MiB of data chunks through a store whose
// backend is in memory and whose decrypted cache is empty: the cost of
// authentication and decryption per byte.
func BenchmarkReadAtDecrypt(b *testing.B) {
	const size, cs = 16 << 20, store.DefaultChunkSize
	img := image(size, 3)
	for i := range img {
		img[i] = byte(i*7 + i>>12)
	}
	be := mem.New(0)
	w := newStore(b, be, keys(b, "acme", secret), func(c *store.Config) { c.ChunkSize = cs })
	if _, err := w.Put(context.Background(), "v", []store.FileSource{{Name: "mem.img", Size: size, R: bytes.NewReader(img)}}); err != nil {
		b.Fatal(err)
	}
	p := make([]byte, cs)
	b.SetBytes(size)
	for b.Loop() {
		s := newStore(b, be, keys(b, "acme", secret), func(c *store.Config) { c.ChunkSize = cs; c.CacheBytes = -1 })
		sn, err := s.Open(context.Background(), "v")
		if err != nil {
			b.Fatal(err)
		}
		f, _ := sn.File("mem.img")
		for off := int64(0); off < size; off += cs {
			if _, err := f.ReadAt(p, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}
