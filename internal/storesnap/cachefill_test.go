package storesnap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
)

// The reader (pager) view fills the worker's disk cache with what it
// fetched from the remote: a second reader is served from the cache with
// the remote gone, the worker's disk tier adopts the files, and a damaged
// cached copy is replaced by the remote's good one.
func TestReaderFillsDiskCache(t *testing.T) {
	ctx := context.Background()
	snap, mem := writeSnapshot(t)
	d := t.TempDir()
	sec := secret(t)
	remote := filepath.Join(d, "remote")
	pub, err := Open(ctx, Config{Tenant: "t", Secret: sec, Dir: remote, CacheDir: filepath.Join(d, "publisher-cache"), ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(ctx, pub.Store, "a", snap); err != nil {
		t.Fatal(err)
	}
	pub.Close()

	// The worker's store, with an empty cache of its own, and its pager.
	cfg := Config{Tenant: "t", Secret: sec, Dir: remote, CacheDir: filepath.Join(d, "cache")}
	w, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r1, err := OpenReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImage(t, r1); !bytes.Equal(got, mem) {
		t.Fatal("first reader: image differs")
	}
	r1.Close() // waits for its cache writes
	chunks := r1.Store.Counters().Fetched
	if chunks == 0 {
		t.Fatal("first reader fetched nothing")
	}

	// The next reader finds every chunk in the cache: the remote is gone.
	if err := os.Rename(remote, remote+".gone"); err != nil {
		t.Fatal(err)
	}
	r2, err := OpenReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImage(t, r2); !bytes.Equal(got, mem) {
		t.Fatal("second reader, from the cache alone: image differs")
	}
	r2.Close()

	// The worker adopts the files on its first lookup: disk-tier hits.
	if got := readImage(t, w); !bytes.Equal(got, mem) {
		t.Fatal("worker: image differs")
	}
	var disk store.TierStat
	for _, s := range w.Store.TierStats() {
		if s.Tier == "disk" {
			disk = s
		}
	}
	if disk.Hits < chunks {
		t.Fatalf("worker's disk tier hits %d, want at least the %d chunks the reader added", disk.Hits, chunks)
	}

	// A damaged cached copy is skipped and replaced by the remote's.
	if err := os.Rename(remote+".gone", remote); err != nil {
		t.Fatal(err)
	}
	var damaged string
	filepath.WalkDir(filepath.Join(cfg.CacheDir, "chunks", "objects"), func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && damaged == "" {
			damaged = p
		}
		return nil
	})
	if err := os.WriteFile(damaged, []byte("THC1 damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	r3, err := OpenReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImage(t, r3); !bytes.Equal(got, mem) {
		t.Fatal("third reader over a damaged cache copy: image differs")
	}
	r3.Close()
	if b, err := os.ReadFile(damaged); err != nil || bytes.Equal(b, []byte("THC1 damaged")) {
		t.Fatalf("damaged cache copy not replaced (%v)", err)
	}
}

// readImage reads snapshot "a"'s memory image through h.
func readImage(t *testing.T, h *Handle) []byte {
	t.Helper()
	ctx := context.Background()
	sn, err := OpenSnapshot(ctx, h.Store, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, sn.Image.Size())
	if err := ForEachChunk(ctx, sn.Snap, snapshot.ImageFile, 4, func(ctx context.Context, off, size int64) error {
		_, err := sn.Image.ReadAtContext(ctx, got[off:off+size], off)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return got
}
