package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// TestDirectRead: a bulk restore of a local snapshot whose ws.img is not in
// the page cache reads it with direct I/O, into a new region and into a
// reused one, and the memory is the image; once the memory is released,
// ws.img is read into the page cache in the background, and with ws.img
// cached a restore copies from the cache instead.
func TestDirectRead(t *testing.T) {
	p := startPager(t)
	snap, _ := confSnapshot(t)
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	r := &Restorer{Pager: p, Regions: pool}
	image := confImage()
	for _, tc := range []struct {
		name         string
		cold, direct bool
		reused       bool
	}{
		{name: "cold file, new region", cold: true, direct: true},
		{name: "cold file, reused region", cold: true, direct: true, reused: true},
		{name: "cached file", cold: false, direct: false, reused: true},
	} {
		if tc.cold {
			if err := snap.DropCache(); err != nil {
				t.Fatal(err)
			}
		} else if _, err := os.ReadFile(snap.Path(snapshot.WSImageFile)); err != nil {
			t.Fatal(err)
		}
		m, err := r.Prepare(context.Background(), Bulk, Files(snap), 32<<20, false)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		st := m.Stats()
		if st.Direct != tc.direct || st.Reused != tc.reused {
			t.Fatalf("%s: direct %v, reused %v; want %v, %v", tc.name, st.Direct, st.Reused, tc.direct, tc.reused)
		}
		if !readAll(m, image) {
			t.Fatalf("%s: memory differs from the image", tc.name)
		}
		if f := m.Failures(); f != (pager.Failures{}) {
			t.Fatalf("%s: failures %+v", tc.name, f)
		}
		// Garbage in every page, as a guest would leave, for the next
		// restore to overwrite or clear.
		for i := range m.Region.Bytes()[:len(image)] {
			m.Region.Bytes()[i] = 0x5A
		}
		m.Region.Free()
		if tc.direct {
			waitCached(t, snap.Path(snapshot.WSImageFile))
		}
	}
}

// TestDirectReadAbandoned: a bulk restore that fails after its direct read
// was submitted (here: no pager to serve the rest) waits for the read and
// gives its staging buffer back, and the next restore reads and installs
// the working set as if nothing had happened.
func TestDirectReadAbandoned(t *testing.T) {
	snap, _ := confSnapshot(t)
	if err := snap.DropCache(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(snap.Path(snapshot.WSImageFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || cached(f, fi.Size()) {
		t.Fatalf("ws.img is cached (%v): the restore would not read it directly", err)
	}
	buf, err := stages.Get() // so that the pool holds a buffer to count
	if err != nil {
		t.Fatal(err)
	}
	stages.Put(buf)
	before := stages.Len()
	if _, err := (&Restorer{}).Prepare(context.Background(), Bulk, Files(snap), 32<<20, false); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("bulk restore without a pager: %v, want ErrUnavailable", err)
	}
	if after := stages.Len(); after != before {
		t.Fatalf("%d idle staging buffers after the failed restore, %d before", after, before)
	}
	if err := snap.DropCache(); err != nil {
		t.Fatal(err)
	}
	m, err := (&Restorer{Pager: startPager(t)}).Prepare(context.Background(), Bulk, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	if !m.Stats().Direct || !readAll(m, confImage()) {
		t.Fatalf("restore after the abandoned read: direct %v, or memory differs from the image", m.Stats().Direct)
	}
}

// TestDirectReadDamaged: a working-set page that fails its checksum on the
// direct read fails the restore with ErrCorrupt, as on the buffered one.
func TestDirectReadDamaged(t *testing.T) {
	p := startPager(t)
	snap, _ := confSnapshot(t)
	src := Files(snap)
	damageFile(t, src, snapshot.WSImageFile, snapshot.PageSize)
	if err := snap.DropCache(); err != nil {
		t.Fatal(err)
	}
	r := &Restorer{Pager: p}
	m, err := r.Prepare(context.Background(), Bulk, src, 32<<20, false)
	if err == nil {
		m.Region.Free()
		t.Fatal("a damaged working set was installed")
	}
	if !errors.Is(err, errdefs.ErrCorrupt) || r.CorruptRestores() != 1 {
		t.Fatalf("restore of a damaged working set: %v (%d counted), want ErrCorrupt", err, r.CorruptRestores())
	}
}

// waitCached waits until the whole file at path is in the page cache.
func waitCached(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !cached(f, fi.Size()) {
		if time.Now().After(deadline) {
			t.Fatal("ws.img was not read into the page cache after a direct read")
		}
		time.Sleep(time.Millisecond)
	}
}

// piecesSnapshot writes a snapshot whose working set (three pages of every
// four, over 4 staging buffers and a bit of image) takes several pieces,
// and returns it with its image and working set.
func piecesSnapshot(t *testing.T) (*snapshot.Snapshot, []byte, *snapshot.WorkingSet) {
	t.Helper()
	const pages = 4*stagePiece/snapshot.PageSize + 100
	image := make([]byte, pages*snapshot.PageSize)
	for i := range image {
		image[i] = byte(i/snapshot.PageSize*31 + i%251)
	}
	var trace []int
	for pg := 0; pg < pages; pg++ {
		if pg%4 != 3 {
			trace = append(trace, pg)
		}
	}
	meta := snapshot.Meta{ID: "many", Function: "many", ModuleSHA: "m", State: engine.State{Pages: pages * snapshot.PageSize / engine.WasmPageSize}}
	snap, err := snapshot.Write(filepath.Join(t.TempDir(), "snap"), meta, image)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := snap.WriteWorkingSet(trace)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cutPieces(ws.Runs, stagePiece/snapshot.PageSize)); n < 3 {
		t.Fatalf("%d pieces, want at least 3", n)
	}
	return snap, image, ws
}

// TestDirectReadPieces: a working set larger than a staging buffer is read
// directly in several pieces, a window of them in flight at a time, runs that
// cross a piece's end split between two, each page into its own place.
func TestDirectReadPieces(t *testing.T) {
	p := startPager(t)
	snap, image, ws := piecesSnapshot(t)
	// The default window, and one piece at a time: the pieces after the
	// second then go into buffers a copier has given back.
	for _, window := range []int{stageWindow, 1} {
		defer func(w int) { stageWindow = w }(stageWindow)
		stageWindow = window
		if err := snap.DropCache(); err != nil {
			t.Fatal(err)
		}
		m, err := (&Restorer{Pager: p}).Prepare(context.Background(), Bulk, Files(snap), 64<<20, false)
		if err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); !st.Direct || st.BytesRead < ws.Bytes() {
			t.Fatalf("window %d: stats %+v: want a direct read of %d bytes", window, st, ws.Bytes())
		}
		if !readAll(m, image) {
			t.Fatalf("window %d: restored memory differs from the image", window)
		}
		m.Region.Free()
	}
}

// TestDirectReadPiecesDamaged: a page that fails its checksum in a later
// piece of a read in pieces fails the restore with ErrCorrupt, whichever
// copier finds it, and every staging buffer goes back to the pool.
func TestDirectReadPiecesDamaged(t *testing.T) {
	p := startPager(t)
	snap, _, ws := piecesSnapshot(t)
	damageFile(t, Files(snap), snapshot.WSImageFile, ws.Bytes()-3*stagePiece/2)
	for _, window := range []int{stageWindow, 1} {
		defer func(w int) { stageWindow = w }(stageWindow)
		stageWindow = window
		stages.ReleaseAll()
		if err := snap.DropCache(); err != nil {
			t.Fatal(err)
		}
		r := &Restorer{Pager: p}
		m, err := r.Prepare(context.Background(), Bulk, Files(snap), 64<<20, false)
		if err == nil {
			m.Region.Free()
			t.Fatalf("window %d: a damaged working set was installed", window)
		}
		if !errors.Is(err, errdefs.ErrCorrupt) || r.CorruptRestores() != 1 {
			t.Fatalf("window %d: %v (%d counted), want ErrCorrupt", window, err, r.CorruptRestores())
		}
		if n, want := stages.Len(), min(2*window, len(cutPieces(ws.Runs, stagePiece/snapshot.PageSize))); n != want {
			t.Fatalf("window %d: %d idle staging buffers after the restore, want %d", window, n, want)
		}
	}
}

// TestCutPieces: pieces hold the runs in order, each page once, every
// piece but the last exactly full, a run crossing a piece's end split.
func TestCutPieces(t *testing.T) {
	runs := []snapshot.Run{{Start: 0, Count: 3}, {Start: 10, Count: 4}, {Start: 20, Count: 1}, {Start: 30, Count: 9}}
	got := cutPieces(runs, 5)
	want := [][]snapshot.Run{
		{{Start: 0, Count: 3}, {Start: 10, Count: 2}},
		{{Start: 12, Count: 2}, {Start: 20, Count: 1}, {Start: 30, Count: 2}},
		{{Start: 32, Count: 5}},
		{{Start: 37, Count: 2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cutPieces = %v, want %v", got, want)
	}
	if got := cutPieces(nil, 5); len(got) != 0 {
		t.Fatalf("cutPieces(nil) = %v", got)
	}
}

// TestStagePool: staging buffers are one huge page, aligned to it, and
// writable to their end; the pool keeps at most stageKeep idle ones and
// unmaps them all on ReleaseAll (the list itself: internal/freelist).
func TestStagePool(t *testing.T) {
	var bufs [][]byte
	for range stageKeep + 1 {
		b, err := stages.Get()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != stagePiece || uintptr(unsafe.Pointer(&b[0]))%stagePiece != 0 {
			t.Fatalf("buffer of %d bytes at %p, want %d aligned to it", len(b), &b[0], stagePiece)
		}
		b[len(b)-1] = 1
		bufs = append(bufs, b)
	}
	for _, b := range bufs {
		stages.Put(b)
	}
	if n := stages.Len(); n != stageKeep {
		t.Fatalf("%d idle buffers kept, want %d", n, stageKeep)
	}
	stages.ReleaseAll()
	if n := stages.Len(); n != 0 {
		t.Fatalf("%d idle buffers after ReleaseAll", n)
	}
}
