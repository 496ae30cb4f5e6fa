package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/faultguard"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// mmapSnapshot writes a 16 MiB snapshot whose every page holds data, then
// flips one byte of each page in bad in memory.img.
func mmapSnapshot(t testing.TB, bad ...int) *snapshot.Snapshot {
	t.Helper()
	const wasmPages = 256
	mem := make([]byte, wasmPages*engine.WasmPageSize)
	for i := range mem {
		mem[i] = byte(i*7 + i/snapshot.PageSize + 1)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	if _, err := snapshot.Write(dir, snapshot.Meta{State: engine.State{Pages: wasmPages}}, mem); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, snapshot.ImageFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range bad {
		off := int64(p)*snapshot.PageSize + 100
		b := []byte{0}
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{b[0] ^ 0x10}, off); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := snapshot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// sink keeps test reads of mapped memory from being compiled away.
var sink byte

func mustVerify(t *testing.T, m *Memory, wantBad int64) {
	t.Helper()
	bad, err := m.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if bad != wantBad {
		t.Fatalf("Verify = %d bad pages, want %d (stats %+v)", bad, wantBad, m.Stats())
	}
}

// An mmap restore's Verify finds a damaged page once the process has
// mapped it, read or written, and not before. The pages sit in different
// 2 MiB windows: a fault maps the cached neighbours of the faulting page,
// up to a whole large folio of the page cache, so touching one must not
// map another.
func TestMmapVerify(t *testing.T) {
	const good, readBad, writeBad, readBad2 = 100, 600, 1100, 1700
	snap := mmapSnapshot(t, readBad, writeBad, readBad2)
	m, err := (&Restorer{}).Prepare(context.Background(), Mmap, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	mem := m.Region.Bytes()
	page := func(p int) []byte { return mem[p*snapshot.PageSize : (p+1)*snapshot.PageSize] }

	mustVerify(t, m, 0)
	if n := m.Stats().Verified; n != 0 {
		t.Fatalf("verified %d pages before any was touched", n)
	}

	sink += page(good)[0]     // a read maps the file's page
	page(good + 1)[5] ^= 0xff // a write maps a private copy
	mustVerify(t, m, 0)
	if n := m.Stats().Verified; n < 2 {
		t.Fatalf("verified %d pages after touching two", n)
	}

	sink += page(readBad)[0]
	mustVerify(t, m, 1)

	// A write fault copies the damaged page: the copy is checked against
	// the file it came from, not its new contents.
	page(writeBad)[0] = 0
	mustVerify(t, m, 2)

	// A damaged page read, then a neighbour written before the check: the
	// write must not unmap the page read (the kernel splits a huge
	// mapping that way), or the check would miss what the guest saw.
	sink += page(readBad2)[0]
	page(readBad2 + 1)[0] = 0
	mustVerify(t, m, 3)

	// Pages already verified are not checked again.
	before := m.Stats().Verified
	mustVerify(t, m, 3)
	if after := m.Stats().Verified; after != before {
		t.Fatalf("second Verify checked %d more pages, want 0", after-before)
	}
}

// A whole image read through the mapping, as a checkpoint's Capture does,
// is verified in full.
func TestMmapVerifyWholeImage(t *testing.T) {
	snap := mmapSnapshot(t, 3, 700, 4095)
	m, err := (&Restorer{}).Prepare(context.Background(), Mmap, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	mem := m.Region.Bytes()[:snap.Meta.ImageSize]
	for p := 0; p < len(mem); p += snapshot.PageSize {
		sink += mem[p]
	}
	mustVerify(t, m, 3)
	if n, want := m.Stats().Verified, int64(snap.Pages()); n != want {
		t.Fatalf("verified %d pages, want all %d", n, want)
	}
}

// BenchmarkMmapVerify measures the check after a first call that mapped
// every page of a 16 MiB image, a quarter of them written (copied).
func BenchmarkMmapVerify(b *testing.B) {
	snap := mmapSnapshot(b)
	for b.Loop() {
		b.StopTimer()
		m, err := (&Restorer{}).Prepare(context.Background(), Mmap, Files(snap), 32<<20, false)
		if err != nil {
			b.Fatal(err)
		}
		mem := m.Region.Bytes()[:snap.Meta.ImageSize]
		for p := 0; p < len(mem); p += snapshot.PageSize {
			if p%(4*snapshot.PageSize) == 0 {
				mem[p] = 1
			} else {
				sink += mem[p]
			}
		}
		b.StartTimer()
		if _, err := m.Verify(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		m.Region.Free()
		b.StartTimer()
	}
	b.SetBytes(snap.Meta.ImageSize)
}

// The pass ahead, which runs while the guest may write, checks mapped
// pages by re-reading them from the file rather than through the mapping,
// and finds a damaged one that way too.
func TestMmapVerifyAheadReadsTheFile(t *testing.T) {
	const bad = 600
	snap := mmapSnapshot(t, bad)
	m, err := (&Restorer{}).Prepare(context.Background(), Mmap, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	c := m.check
	c.stopAhead() // this test runs the pass itself
	mem := m.Region.Bytes()
	sink += mem[bad*snapshot.PageSize]
	c.mu.Lock()
	n, found, err := c.scan(false)
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || len(found) != 1 || found[0] != bad {
		t.Fatalf("pass ahead checked %d pages and found %v bad, want [%d]", n, found, bad)
	}
}

// An image file that something outside thaw truncates: before an mmap
// restore maps it, the restore is refused as corrupt; while it is mapped,
// a page past the new end reads as zeros instead of ending the process
// with SIGBUS, and Verify reports it.
func TestMmapTruncatedImage(t *testing.T) {
	if !faultguard.Available {
		t.Skip("no cgo: a truncated mapping still ends the process")
	}
	ctx := context.Background()
	snap := mmapSnapshot(t)
	img := snap.Path(snapshot.ImageFile)
	size := snap.Meta.ImageSize
	m, err := (&Restorer{}).Prepare(ctx, Mmap, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	mem := m.Region.Bytes()
	sink += mem[0]
	mustVerify(t, m, 0)

	if err := os.Truncate(img, size/8); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Restorer{}).Prepare(ctx, Mmap, Files(snap), 32<<20, false); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("mmap restore of a short image: %v, want ErrCorrupt", err)
	}
	if got := mem[size/2]; got != 0 {
		t.Fatalf("a page past the truncated end read %d, want 0", got)
	}
	mem[size-1] = 7 // a write, too
	sink += mem[0]  // a page the file still covers reads as before
	bad, err := m.Verify()
	if !errors.Is(err, errdefs.ErrCorrupt) || bad < 2 {
		t.Fatalf("Verify after touching two pages past the end = %d, %v; want >= 2 bad, ErrCorrupt", bad, err)
	}
	if want := byte(1); mem[0] != want {
		t.Fatalf("page 0 reads %d after the truncation, want %d", mem[0], want)
	}
}
