package restore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// A materialised store image is plaintext on local disk, reused by size:
// someone who can write the cache directory can change it. An mmap restore
// of a tampered one must be caught (after the call, as for a local image),
// and the file removed so the next restore materialises it afresh from
// authenticated chunks. An eager restore reads the authenticated chunks
// themselves and is unaffected.
func TestStoreMmapTamperedMaterialisedImage(t *testing.T) {
	f := helloFixture(t)
	cfg := dirConfig(t)
	_, sn := publish(t, f, cfg)
	cacheDir := t.TempDir()
	r, src := &Restorer{Pager: f.pager}, (&Store{Config: cfg, CacheDir: cacheDir}).Snapshot(sn)
	ctx := context.Background()

	// call restores in mode, invokes once and returns the answer and the
	// bad-page count Verify reports after the call (as the worker does).
	call := func(mode Mode) ([]byte, int64) {
		t.Helper()
		m, err := r.Prepare(ctx, mode, src, instCfg.MemoryLimit, false)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := f.mod.Restore(ctx, instCfg, &sn.Meta.State, m.Region)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close(ctx)
		resp, err := inst.Invoke(ctx, get("/x", "name=thaw"))
		var body []byte
		if err == nil {
			body = resp.Body
		}
		bad, verr := m.Verify()
		if verr != nil {
			t.Fatal(verr)
		}
		return body, bad
	}

	if got, bad := call(Mmap); !bytes.Equal(got, f.want) || bad != 0 {
		t.Fatalf("clean mmap restore: %q, %d bad pages", got, bad)
	}
	img := filepath.Join(cacheDir, sn.ID+".img")
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != snapshot.FileMode {
		t.Errorf("materialised image mode %v, want %v", fi.Mode().Perm(), snapshot.FileMode)
	}
	if di, err := os.Stat(cacheDir); err == nil && di.Mode().Perm()&0o077 != 0 {
		t.Logf("cache dir %v (a test temp dir)", di.Mode().Perm())
	}

	// Tamper with every data page the clean restore's call touched: flip
	// one byte in each non-zero page of the file (same size, so reused).
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for p := 0; p+snapshot.PageSize <= len(b); p += snapshot.PageSize {
		if !bytes.Equal(b[p:p+snapshot.PageSize], make([]byte, snapshot.PageSize)) {
			b[p+snapshot.PageSize/2] ^= 0x20
			n++
		}
	}
	if n == 0 {
		t.Fatal("materialised image has no data page")
	}
	if err := os.WriteFile(img, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// Eager reads authenticated chunks, not the local file.
	if got, bad := call(Eager); !bytes.Equal(got, f.want) || bad != 0 {
		t.Fatalf("eager restore beside a tampered materialised image: %q, %d bad pages", got, bad)
	}
	// mmap maps the tampered file: its pages fail their checksums.
	if _, bad := call(Mmap); bad == 0 {
		t.Fatal("mmap restore of a tampered materialised image: no bad page found")
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Fatalf("tampered materialised image still there (%v)", err)
	}
	// The next restore materialises it again from the store: clean.
	if got, bad := call(Mmap); !bytes.Equal(got, f.want) || bad != 0 {
		t.Fatalf("mmap restore after re-materialising: %q, %d bad pages", got, bad)
	}
}

// materialisedFix is a published snapshot and a restorer with its own
// cache directory, shared by the iterations of FuzzMaterialisedImage.
var materialisedFix struct {
	once  sync.Once
	sn    *storesnap.Snapshot
	r     *Restorer
	src   Source
	clean []byte // the image as materialised
	path  string
}

// pageSink keeps the compiler from dropping the reads that map pages.
var pageSink byte

// FuzzMaterialisedImage: whatever a materialised store image holds (any
// bytes written anywhere in it, any size), an mmap restore of it either
// re-materialises it (wrong size) or maps it and, once the guest has
// touched every page, reports a bad page exactly when some page differs
// from the snapshot: never a panic, never an unverified page.
func FuzzMaterialisedImage(f *testing.F) {
	f.Add([]byte{}, uint32(0))  // untouched
	f.Add([]byte{1}, uint32(0)) // first byte
	f.Add([]byte{0xff, 0xff}, uint32(9000))
	f.Add(bytes.Repeat([]byte{7}, 5000), uint32(1<<16))
	f.Add([]byte{1}, uint32(1<<31)) // grows the file: not reused
	f.Fuzz(func(t *testing.T, patch []byte, off uint32) {
		fx := &materialisedFix
		fx.once.Do(func() {
			// Everything here outlives this iteration's t: no t.TempDir,
			// no t.Cleanup.
			f := helloFixture(t)
			ctx := context.Background()
			dir, err := os.MkdirTemp("", "thaw-materialised-")
			if err != nil {
				t.Fatal(err)
			}
			cfg := stack.Config{Tenant: "t1", Secret: storetest.Secret(t), Dir: filepath.Join(dir, "remote"), CacheDir: filepath.Join(dir, "cache")}
			h, err := stack.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := storesnap.Publish(ctx, h.Store, "hello.s1", f.snap); err != nil {
				t.Fatal(err)
			}
			sn, err := storesnap.OpenSnapshot(ctx, h.Store, "hello.s1")
			if err != nil {
				t.Fatal(err)
			}
			st := &Store{Config: cfg, CacheDir: filepath.Join(dir, "images")}
			fx.r, fx.src = &Restorer{Pager: f.pager}, st.Snapshot(sn)
			var written int64
			fx.path, written, err = sn.Materialise(ctx, st.CacheDir, 4)
			if err != nil || written == 0 {
				t.Fatalf("materialise: %d bytes, %v", written, err)
			}
			if fx.clean, err = os.ReadFile(fx.path); err != nil {
				t.Fatal(err)
			}
			fx.sn = sn
		})
		if fx.sn == nil {
			t.Skip("fixture failed in an earlier iteration")
		}
		img := append([]byte(nil), fx.clean...)
		if end := int64(off) + int64(len(patch)); end > int64(len(img)) {
			if end > int64(len(img))+1<<20 {
				off, end = uint32(len(img)), int64(len(img))+int64(len(patch)) // bound the file the test writes
			}
			img = append(img, make([]byte, end-int64(len(img)))...)
		}
		copy(img[off:], patch)
		if err := os.WriteFile(fx.path, img, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := fx.r.Prepare(context.Background(), Mmap, fx.src, instCfg.MemoryLimit, false)
		if err != nil {
			t.Fatalf("mmap restore: %v", err)
		}
		defer m.Region.Free()
		mem := m.Region.Bytes()[:fx.sn.Meta.ImageSize]
		for p := 0; p < len(mem); p += snapshot.PageSize {
			pageSink ^= mem[p] // map every page, as a guest touching all of them would
		}
		bad, err := m.Verify()
		if err != nil {
			t.Fatal(err)
		}
		changed := len(img) == len(fx.clean) && !bytes.Equal(img, fx.clean)
		if changed != (bad > 0) {
			t.Fatalf("image changed=%v (size %d, clean %d), %d bad pages reported", changed, len(img), len(fx.clean), bad)
		}
		if !changed {
			return
		}
		// The tampered file is gone: the next restore writes it afresh.
		if _, err := os.Stat(fx.path); !os.IsNotExist(err) {
			t.Fatalf("tampered image kept: %v", err)
		}
	})
}
