package storesnap

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
)

// writeSnapshot writes a 4-wasm-page snapshot with data in pages 0-2 and
// 40-59, a hole elsewhere, and a working set of pages 1 and 40-49.
func writeSnapshot(t *testing.T) (*snapshot.Snapshot, []byte) {
	t.Helper()
	mem := make([]byte, 4*engine.WasmPageSize)
	r := rand.New(rand.NewPCG(1, 2))
	for _, rg := range [][2]int{{0, 3}, {40, 60}} {
		for i := rg[0] * snapshot.PageSize; i < rg[1]*snapshot.PageSize; i++ {
			mem[i] = byte(r.IntN(256))
		}
	}
	snap, err := snapshot.Write(filepath.Join(t.TempDir(), "s"), snapshot.Meta{ID: "s", State: engine.State{Pages: 4}}, mem)
	if err != nil {
		t.Fatal(err)
	}
	trace := []int{41, 1}
	for p := 40; p < 50; p++ {
		trace = append(trace, p)
	}
	if _, err := snap.WriteWorkingSet(trace); err != nil {
		t.Fatal(err)
	}
	return snap, mem
}

func TestPublishOpen(t *testing.T) {
	ctx := context.Background()
	snap, mem := writeSnapshot(t)
	cases := []struct {
		name  string
		chunk int
	}{{"4KiB chunks", 4 << 10}, {"64KiB chunks", 64 << 10}, {"default chunks", 0}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			cfg := stack.Config{Tenant: "t", Secret: storetest.Secret(t), Dir: filepath.Join(d, "remote"), CacheDir: filepath.Join(d, "cache"), ChunkSize: tc.chunk}
			h, err := stack.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if _, err := Publish(ctx, h.Store, ID("fn", "s"), snap); err != nil {
				t.Fatal(err)
			}
			// The pager's read-only view of the same store.
			ro, err := stack.OpenReader(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			for _, hh := range []*stack.Handle{h, ro} {
				sn, err := OpenSnapshot(ctx, hh.Store, ID("fn", "s"))
				if err != nil {
					t.Fatal(err)
				}
				if sn.Meta.ImageSize != int64(len(mem)) || sn.WS == nil || sn.WS.Pages != 11 || len(sn.WS.Runs) != 2 {
					t.Fatalf("opened meta %+v ws %+v", sn.Meta, sn.WS)
				}
				got := make([]byte, len(mem))
				if err := sn.Snap.ForEachChunk(ctx, snapshot.ImageFile, 4, func(ctx context.Context, off, size int64) error {
					_, err := sn.Image.ReadAtContext(ctx, got[off:off+size], off)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, mem) {
					t.Fatal("image read through ForEachChunk differs")
				}
				ws := make([]byte, sn.WSImage.Size())
				if _, err := sn.WSImage.ReadAtContext(ctx, ws, 0); err != nil {
					t.Fatal(err)
				}
				want := append(append([]byte(nil), mem[snapshot.PageSize:2*snapshot.PageSize]...), mem[40*snapshot.PageSize:50*snapshot.PageSize]...)
				if !bytes.Equal(ws, want) {
					t.Fatal("ws.img differs from the working set's pages")
				}
				path, _, err := sn.Materialise(ctx, filepath.Join(d, "img"), 4)
				if err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(path)
				if err != nil || !bytes.Equal(b, mem) {
					t.Fatalf("materialised image differs (%v)", err)
				}
			}
		})
	}
}

// A snapshot without a working set is published without ws files, and a
// missing snapshot is ErrNotFound.
func TestPublishWithoutWorkingSet(t *testing.T) {
	ctx := context.Background()
	snap, _ := writeSnapshot(t)
	if err := snap.RemoveWorkingSet(); err != nil {
		t.Fatal(err)
	}
	h, err := stack.Open(ctx, stack.Config{Tenant: "t", Secret: storetest.Secret(t), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := Publish(ctx, h.Store, "a", snap); err != nil {
		t.Fatal(err)
	}
	sn, err := OpenSnapshot(ctx, h.Store, "a")
	if err != nil || sn.WS != nil || sn.WSImage != nil {
		t.Fatalf("opened %+v, %v; want no working set", sn, err)
	}
	if _, err := OpenSnapshot(ctx, h.Store, "b"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing snapshot: %v", err)
	}
}

// Pull writes a stored snapshot back as a local snapshot directory that
// opens as the original does: the same metadata, image, checksums and
// working set; a pull into an existing directory is refused, and a
// directory a failed pull leaves behind is never half a snapshot.
func TestPull(t *testing.T) {
	ctx := context.Background()
	snap, mem := writeSnapshot(t)
	d := t.TempDir()
	h, err := stack.Open(ctx, stack.Config{Tenant: "t", Secret: storetest.Secret(t), Dir: filepath.Join(d, "remote"), ChunkSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := Publish(ctx, h.Store, ID("fn", "s"), snap); err != nil {
		t.Fatal(err)
	}
	sn, err := OpenSnapshot(ctx, h.Store, ID("fn", "s"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(d, "local", "s")
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	got, written, err := sn.Pull(ctx, dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got.Meta.ID != "s" || got.Meta.ImageSize != int64(len(mem)) || got.Meta.CRCSum != snap.Meta.CRCSum || written == 0 {
		t.Fatalf("pulled %+v (%d bytes written), want the meta of %+v", got.Meta, written, snap.Meta)
	}
	img, err := os.ReadFile(got.Path(snapshot.ImageFile))
	if err != nil || !bytes.Equal(img, mem) {
		t.Fatalf("pulled image differs (%v)", err)
	}
	want, err := snap.WorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	ws, err := got.WorkingSet()
	if err != nil || ws.Pages != want.Pages || ws.CRC != want.CRC {
		t.Fatalf("pulled working set %+v, %v; want %+v", ws, err, want)
	}
	if _, _, err := sn.Pull(ctx, dir, 4); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("pull over an existing snapshot: %v, want a conflict", err)
	}

	// A pull whose reads fail (the context is done) leaves nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	other := filepath.Join(d, "local", "t")
	if _, _, err := sn.Pull(cctx, other, 4); err == nil {
		t.Fatal("pull with a cancelled context succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Dir(other)); len(entries) != 1 {
		t.Fatalf("a failed pull left %v behind", entries)
	}
}
