package restore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/snapshot"
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
	r := &StoreRestorer{Pager: f.pager, Config: cfg, CacheDir: cacheDir}
	ctx := context.Background()

	// call restores in mode, invokes once and returns the answer and the
	// bad-page count Verify reports after the call (as the worker does).
	call := func(mode Mode) ([]byte, int64) {
		t.Helper()
		m, err := r.Prepare(ctx, mode, sn, instCfg.MemoryLimit, false)
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
