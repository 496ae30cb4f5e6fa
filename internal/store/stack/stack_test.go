package stack_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/mem"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
)

// put stores a 64 KiB image of random bytes as snapshot id and returns it.
func put(t *testing.T, h *stack.Handle, id string) []byte {
	t.Helper()
	img := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	if _, err := h.Store.Put(context.Background(), id, []store.FileSource{{Name: "mem.img", Size: int64(len(img)), R: bytes.NewReader(img)}}); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
	return img
}

// read reads snapshot id's image through h.
func read(t *testing.T, h *stack.Handle, id string) []byte {
	t.Helper()
	return readCtx(t, context.Background(), h, id)
}

// readCtx is read under ctx.
func readCtx(t testing.TB, ctx context.Context, h *stack.Handle, id string) []byte {
	t.Helper()
	sn, err := h.Store.Open(ctx, id)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	f, err := sn.File("mem.img")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, f.Size())
	if _, err := f.ReadAtContext(ctx, got, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read %s: %v", id, err)
	}
	return got
}

// The reader (pager) stack fills the worker's disk cache with what it
// fetched from the remote: a second reader is served from the cache with
// the remote gone, the worker's disk tier adopts the files, and a damaged
// cached copy is replaced by the remote's good one.
func TestReaderFillsDiskCache(t *testing.T) {
	d := t.TempDir()
	sec := storetest.Secret(t)
	remote := filepath.Join(d, "remote")
	pub, err := stack.Open(context.Background(), stack.Config{Tenant: "t", Secret: sec, Dir: remote, CacheDir: filepath.Join(d, "publisher-cache"), ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	img := put(t, pub, "a")
	pub.Close()

	// The worker's store, with an empty cache of its own, and its pager.
	cfg := stack.Config{Tenant: "t", Secret: sec, Dir: remote, CacheDir: filepath.Join(d, "cache")}
	w, err := stack.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reader := func(what string) *stack.Handle {
		t.Helper()
		r, err := stack.OpenReader(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(read(t, r, "a"), img) {
			t.Fatalf("%s: image differs", what)
		}
		r.Close() // writes its cache fills
		return r
	}
	chunks := reader("first reader").Store.Counters().Fetched
	if chunks < 16 {
		t.Fatalf("first reader fetched %d chunks, want the image's 16", chunks)
	}

	// The next reader finds every chunk in the cache: the remote is gone.
	if err := os.Rename(remote, remote+".gone"); err != nil {
		t.Fatal(err)
	}
	reader("second reader, from the cache alone")

	// The worker adopts the files on its first lookup: disk-tier hits.
	if !bytes.Equal(read(t, w, "a"), img) {
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
		if err == nil && !de.IsDir() && damaged == "" && strings.HasPrefix(filepath.Base(p), "chunks~") {
			damaged = p
		}
		return nil
	})
	if err := os.WriteFile(damaged, []byte("THC1 damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	reader("third reader, over a damaged cache copy")
	if b, err := os.ReadFile(damaged); err != nil || bytes.Equal(b, []byte("THC1 damaged")) {
		t.Fatalf("damaged cache copy not replaced (%v)", err)
	}
}

// An S3 endpoint that does not answer does not fail Open: a snapshot
// written meanwhile is queued on local disk and read back from the local
// tiers, while anything only the remote could answer is ErrUnavailable.
// (The return of the endpoint is tested against MinIO in internal/worker.)
func TestOpenWithUnreachableS3(t *testing.T) {
	ctx := context.Background()
	cfg := stack.Config{Tenant: "t1", Secret: storetest.Secret(t), CacheDir: t.TempDir(), S3: &s3.Config{
		Endpoint: "127.0.0.1:1", AccessKey: "k", SecretKey: "s", Bucket: "b"}}
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open with the endpoint down: %v", err)
	}
	defer h.Close()
	img := put(t, h, "f.s")
	if h.Tiered.Pending() == 0 {
		t.Fatal("nothing queued")
	}
	if !bytes.Equal(read(t, h, "f.s"), img) {
		t.Fatal("the queued image differs")
	}
	if _, err := h.Store.Open(ctx, "f.other"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("snapshot only the remote could have: %v, want ErrUnavailable", err)
	}
	if _, err := h.Store.GC(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("GC while down: %v, want ErrUnavailable", err)
	}
}

// OpenReaderJSON opens what Config.JSON encodes, and refuses what does not
// decode or validate.
func TestOpenReaderJSON(t *testing.T) {
	cfg := stack.Config{Tenant: "t", Secret: storetest.Secret(t), Dir: t.TempDir()}
	w, err := stack.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	img := put(t, w, "a")
	st, err := stack.OpenReaderJSON(cfg.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, &stack.Handle{Store: st}, "a"), img) {
		t.Fatal("image read through the decoded config differs")
	}
	for _, bad := range []string{`{`, `{"tenant":"t"}`} {
		if _, err := stack.OpenReaderJSON([]byte(bad)); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("OpenReaderJSON(%s): %v, want ErrInvalid", bad, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	s := storetest.Secret(t)
	cases := []struct {
		name string
		c    stack.Config
		ok   bool
	}{
		{"dir", stack.Config{Tenant: "t", Secret: s, Dir: "/x"}, true},
		{"s3", stack.Config{Tenant: "t", Secret: s, S3: &s3.Config{}}, true},
		{"no remote", stack.Config{Tenant: "t", Secret: s}, false},
		{"two remotes", stack.Config{Tenant: "t", Secret: s, Dir: "/x", S3: &s3.Config{}}, false},
		{"short secret", stack.Config{Tenant: "t", Secret: []byte("short"), Dir: "/x"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// A peer tier goes after the local caches and before the remote, and
// Handle.Cache is the disk cache (what a peer.Server serves).
func TestPeerTier(t *testing.T) {
	ctx := context.Background()
	d := t.TempDir()
	sec := storetest.Secret(t)
	h, err := stack.Open(ctx, stack.Config{Tenant: "acme", Secret: sec, Dir: filepath.Join(d, "remote"), CacheDir: filepath.Join(d, "cache"), Peer: mem.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var tiers []string
	for _, s := range h.Store.TierStats() {
		tiers = append(tiers, s.Tier)
	}
	if got := strings.Join(tiers, ","); got != "disk,peer,queue,remote" {
		t.Fatalf("tiers %s, want disk,peer,queue,remote", got)
	}
	if h.Cache == nil {
		t.Fatal("Handle.Cache is nil with a cache dir")
	}
	put(t, h, "s1")
	var n int
	if err := h.Cache.List(ctx, "chunks/", func(store.ObjectInfo) error { n++; return nil }); err != nil || n == 0 {
		t.Fatalf("Handle.Cache lists %d chunks after a put (%v)", n, err)
	}
}
