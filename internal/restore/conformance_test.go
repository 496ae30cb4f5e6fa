package restore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/store/storetest"
	"github.com/thaw-run/thaw/internal/storesnap"
)

// The conformance suite: every restore mode, against every kind of Source,
// must give memory equal to the snapshot's image, fill its stats, catch a
// damaged page, and (eager, bulk) hand its region back to the pool when
// freed. It runs over a synthetic image (no guest), so that it can read
// every page and compare it; TestModesAnswerLikeBoot runs a real guest over
// both sources.

// testSource is a kind of Source the suite runs against.
type testSource struct {
	name string
	// open puts snap where the source reads it from and returns its
	// Source. A store source gets a store of its own (new directory, new
	// key): nothing of an earlier test is cached for it, in this process
	// or the pager's.
	open func(t *testing.T, snap *snapshot.Snapshot) Source
	// damage makes the page at byte off of file (memory.img or ws.img)
	// fail the source's check: a byte of the page (files) or of the stored
	// chunk holding it (store) is flipped.
	damage func(t *testing.T, src Source, file string, off int64)
}

var testSources = []testSource{
	{name: "files", open: func(_ *testing.T, snap *snapshot.Snapshot) Source { return Files(snap) }, damage: damageFile},
	{name: "store", open: openStored, damage: damageChunk},
}

// Synthetic image geometry: 1 MiB with holes, two of which fill whole
// 64 KiB store chunks (zero chunks); a working set of runs that mix data
// and zero pages, with data pages outside it for the pager to serve.
const (
	confPages      = 256
	confChunk      = 64 << 10
	confOutsideWS  = 150 // a data page outside the working set
	confWSFirstRun = 5
)

var confTrace = []int{5, 6, 7, 8, 9, 10, 11, 12, 20, 22, 40, 41, 42, 43, 44, 45, 46, 47, 100, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140}

// confImage is the synthetic memory: page p holds a pattern of p, except
// every fifth page and pages 64-95 (two whole chunks), which are zero.
func confImage() []byte {
	mem := make([]byte, confPages*snapshot.PageSize)
	for p := range confPages {
		if p%5 == 3 || (p >= 64 && p < 96) {
			continue
		}
		for i := range snapshot.PageSize {
			mem[p*snapshot.PageSize+i] = byte(p*7 + i*13 + 1)
		}
	}
	return mem
}

// confSnapshot writes the synthetic image as a snapshot with a working set.
func confSnapshot(t *testing.T) (*snapshot.Snapshot, *snapshot.WorkingSet) {
	t.Helper()
	return confSnapshotAt(t, filepath.Join(t.TempDir(), "snap"), "s1", confImage())
}

// confSnapshotAt writes image as snapshot id at dir, with the working set
// of confTrace. Snapshots of one test share a function and module, so
// their restores share pooled regions.
func confSnapshotAt(t *testing.T, dir, id string, image []byte) (*snapshot.Snapshot, *snapshot.WorkingSet) {
	t.Helper()
	meta := snapshot.Meta{ID: id, Function: "conf", ModuleSHA: "m" + t.Name(), State: engine.State{Pages: confPages * snapshot.PageSize / engine.WasmPageSize}}
	snap, err := snapshot.Write(dir, meta, image)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := snap.WriteWorkingSet(confTrace)
	if err != nil {
		t.Fatal(err)
	}
	if in := pageSet(ws.Runs); in(confOutsideWS) || !in(confWSFirstRun) {
		t.Fatalf("working set %+v", ws.Runs)
	}
	return snap, ws
}

// openStored publishes snap to a store on a local directory (chunks of
// 64 KiB, no disk cache: the remote is the only copy) and opens it from
// the store alone through a fresh handle.
func openStored(t *testing.T, snap *snapshot.Snapshot) Source {
	t.Helper()
	ctx := context.Background()
	d := t.TempDir()
	cfg := stack.Config{Tenant: "t1", Secret: storetest.Secret(t), Dir: filepath.Join(d, "remote"), ChunkSize: confChunk}
	h, err := stack.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := storesnap.ID(snap.Meta.Function, snap.Meta.ID)
	_, err = storesnap.Publish(ctx, h.Store, id, snap)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	if h, err = stack.Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	sn, err := storesnap.OpenSnapshot(ctx, h.Store, id)
	if err != nil {
		t.Fatal(err)
	}
	return (&Store{Config: cfg, CacheDir: filepath.Join(d, "images")}).Snapshot(sn)
}

func damageFile(t *testing.T, src Source, file string, off int64) {
	t.Helper()
	flipByte(t, src.Local().Path(file), off+1)
}

func damageChunk(t *testing.T, src Source, file string, off int64) {
	t.Helper()
	s := src.(stored)
	for _, fe := range s.sn.Snap.Manifest().Files {
		if fe.Name != file {
			continue
		}
		c := fe.Chunks[off/int64(fe.ChunkSize)]
		if c.Zero {
			t.Fatalf("%s at %d is a zero chunk", file, off)
		}
		paths, _ := filepath.Glob(filepath.Join(s.st.Config.Dir, "objects", "*", "*"+c.ID.String()))
		if len(paths) == 0 {
			t.Fatalf("no stored object for chunk %s", c.ID)
		}
		for _, p := range paths {
			flipByte(t, p, -1)
		}
		return
	}
	t.Fatalf("store snapshot has no %s", file)
}

// flipByte flips the byte at off of the file at path (-1: its last).
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off = int64(len(b)) - 1
	}
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	p := startPager(t)
	for _, ts := range testSources {
		t.Run(ts.name, func(t *testing.T) {
			for _, mode := range []Mode{Eager, Mmap, Lazy, Reap, Bulk} {
				t.Run(string(mode), func(t *testing.T) {
					t.Run("contents", func(t *testing.T) { testContents(t, p, ts, mode) })
					t.Run("damaged", func(t *testing.T) { testDamaged(t, p, ts, mode) })
					t.Run("pool", func(t *testing.T) { testPool(t, p, ts, mode) })
				})
			}
			t.Run("ahead", func(t *testing.T) { testAhead(t, p, ts) })
			t.Run("spare", func(t *testing.T) { testSpare(t, p, ts) })
			t.Run("cold", func(t *testing.T) {
				snap, _ := confSnapshot(t)
				_, err := (&Restorer{Pager: p}).Prepare(context.Background(), Cold, ts.open(t, snap), 32<<20, false)
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("a cold restore: %v, want ErrInvalid", err)
				}
			})
		})
	}
}

// readAll touches every page of the image in m (faulting each to the pager,
// or mapping it) and reports whether the memory equals image.
func readAll(m *Memory, image []byte) bool {
	return bytes.Equal(m.Region.Bytes()[:len(image)], image)
}

// testContents: the memory equals the image, and the stats say how it was
// prepared.
func testContents(t *testing.T, p *pager.Pager, ts testSource, mode Mode) {
	snap, ws := confSnapshot(t)
	src := ts.open(t, snap)
	m, err := (&Restorer{Pager: p}).Prepare(context.Background(), mode, src, 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	if !readAll(m, confImage()) {
		t.Fatal("restored memory differs from the image")
	}
	if bad, err := m.Verify(); bad != 0 || err != nil {
		t.Fatalf("Verify = %d, %v on a sound snapshot", bad, err)
	}
	if f := m.Failures(); f != (pager.Failures{}) {
		t.Fatalf("failures %+v on a sound snapshot", f)
	}
	st := m.Stats()
	if st.Mode != mode || st.Map <= 0 || st.Reused || st.Recording {
		t.Fatalf("stats %+v", st)
	}
	paged := mode == Lazy || mode.UsesWorkingSet()
	if m.Paged() != paged || (st.Faults > 0) != paged {
		t.Fatalf("paged %v, %d faults; want paged %v", m.Paged(), st.Faults, paged)
	}
	dataBytes := snap.Meta.DataPages * snapshot.PageSize
	switch mode {
	case Eager:
		if st.BytesRead < dataBytes {
			t.Fatalf("read %d bytes, the image holds %d", st.BytesRead, dataBytes)
		}
	case Mmap:
		if st.Verified == 0 {
			t.Fatalf("no mapped page verified: %+v", st)
		}
	case Reap, Bulk:
		if st.WSPages != ws.Pages || st.WSBytes != ws.Bytes() || st.BytesRead < ws.Bytes() || st.Prefetch <= 0 {
			t.Fatalf("working set of %d pages: stats %+v", ws.Pages, st)
		}
	}
}

// testDamaged: a page that fails its check never reaches the guest
// unnoticed: the restore fails with ErrCorrupt (counted), or the memory
// reports the page (Verify, Failures) once it has been touched. Damage to
// memory.img is in a page outside the working set, so reap and bulk serve
// it lazily; damage to ws.img must fail their prefetch.
func testDamaged(t *testing.T, p *pager.Pager, ts testSource, mode Mode) {
	files := map[string]int64{snapshot.ImageFile: confOutsideWS * snapshot.PageSize}
	if mode.UsesWorkingSet() {
		files[snapshot.WSImageFile] = 0
	}
	for file, off := range files {
		t.Run(file, func(t *testing.T) {
			snap, _ := confSnapshot(t)
			src := ts.open(t, snap)
			ts.damage(t, src, file, off)
			r := &Restorer{Pager: p}
			m, err := r.Prepare(context.Background(), mode, src, 32<<20, false)
			if err != nil {
				if !errors.Is(err, errdefs.ErrCorrupt) || r.CorruptRestores() != 1 {
					t.Fatalf("restore of a damaged snapshot: %v (%d counted), want ErrCorrupt", err, r.CorruptRestores())
				}
				return
			}
			defer m.Region.Free()
			if file == snapshot.WSImageFile {
				t.Fatal("a damaged working set was installed")
			}
			readAll(m, confImage())
			bad, err := m.Verify()
			if err != nil {
				t.Fatal(err)
			}
			if bad == 0 && m.Failures().Corrupt == 0 {
				t.Fatalf("the damaged page went unnoticed: Verify = 0, failures %+v", m.Failures())
			}
			if mode != Mmap && m.Failures().Corrupt == 0 {
				t.Fatalf("the pager served the damaged page without counting it: %+v", m.Failures())
			}
		})
	}
}

// testPool: a freed eager or bulk region goes back to the pool, and the
// next restore reuses it, after a finished instance left garbage in every
// page, and still gives exactly the image (zeros past it). The other modes
// take new regions: lazy and reap install with UFFDIO_COPY, which needs
// the pages missing, and mmap replaces the mapping.
func testPool(t *testing.T, p *pager.Pager, ts testSource, mode Mode) {
	snap, _ := confSnapshot(t)
	src := ts.open(t, snap)
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	r := &Restorer{Pager: p, Regions: pool}
	image := confImage()
	for round := range 2 {
		m, err := r.Prepare(context.Background(), mode, src, 32<<20, false)
		if err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); st.Reused != (round > 0 && pooled(mode)) || st.PagerAhead != (round > 0 && mode == Bulk) ||
			st.WSKept != (round > 0 && mode == Bulk && src.Local() != nil) {
			t.Fatalf("round %d: reused %v, pager session opened ahead %v, working set kept %v", round, st.Reused, st.PagerAhead, st.WSKept)
		}
		if !readAll(m, image) {
			t.Fatalf("round %d: memory differs from the image", round)
		}
		if bad, err := m.Verify(); bad != 0 || err != nil {
			t.Fatalf("round %d: Verify = %d, %v", round, bad, err)
		}
		// Garbage in every page, and past the image, as a guest would
		// leave.
		grown := m.Region.Reallocate(uint64(len(image) + 16*snapshot.PageSize))
		for i := range grown {
			grown[i] = 0xA5
		}
		m.Region.Free()
		if n, _ := pool.Idle(); (n == 1) != pooled(mode) {
			t.Fatalf("round %d: %d regions in the pool after a %s restore's was freed", round, n, mode)
		}
	}
	m, err := r.Prepare(context.Background(), mode, src, 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	mem := m.Region.Bytes()
	if !bytes.Equal(mem[:len(image)], image) {
		t.Fatal("a reused region differs from the image")
	}
	if pooled(mode) && bytes.ContainsFunc(mem[len(image):len(image)+16*snapshot.PageSize], func(r rune) bool { return r != 0 }) {
		t.Fatal("memory past the image is not zero in a reused region")
	}
}

// testAhead: the pager session a finished bulk instance opens ahead for its
// region serves only a restore of the same snapshot. Another snapshot of
// the function (a checkpoint, a redeploy) that gets the region hands its
// own session over, and its faults are served from its own image; so is a
// local snapshot replaced under the same directory.
func testAhead(t *testing.T, p *pager.Pager, ts testSource) {
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	r := &Restorer{Pager: p, Regions: pool}
	dir := t.TempDir()
	// restoreKept restores image's snapshot src in bulk, checks every
	// page, whether its session was opened ahead and whether its working
	// set was kept open with it, and frees the region.
	restoreKept := func(what string, src Source, image []byte, ahead, kept bool, wsPages int) {
		t.Helper()
		m, err := r.Prepare(context.Background(), Bulk, src, 32<<20, false)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Region.Free()
		if st := m.Stats(); st.PagerAhead != ahead || st.WSKept != kept || st.WSPages != wsPages {
			t.Fatalf("%s: pager session opened ahead %v, working set kept %v, %d pages installed; want %v, %v, %d",
				what, st.PagerAhead, st.WSKept, st.WSPages, ahead, kept, wsPages)
		}
		if !readAll(m, image) {
			t.Fatalf("%s: memory differs from the snapshot's image", what)
		}
		if f := m.Failures(); f != (pager.Failures{}) {
			t.Fatalf("%s: failures %+v", what, f)
		}
	}
	// restore is restoreKept where a local snapshot's working set comes
	// with the session opened ahead.
	restore := func(what string, src Source, image []byte, ahead bool) {
		t.Helper()
		restoreKept(what, src, image, ahead, ahead && src.Local() != nil, len(confTrace))
	}
	// other is the image with a different page outside the working set,
	// which only the pager serves.
	other := func(b byte) []byte {
		img := confImage()
		page := img[confOutsideWS*snapshot.PageSize : (confOutsideWS+1)*snapshot.PageSize]
		for i := range page {
			page[i] = b
		}
		return img
	}
	a, _ := confSnapshotAt(t, filepath.Join(dir, "a"), "a", confImage())
	srcA := ts.open(t, a)
	restore("first restore", srcA, confImage(), false)
	restore("same snapshot", srcA, confImage(), true)
	b, _ := confSnapshotAt(t, filepath.Join(dir, "b"), "b", other(0xB0))
	srcB := ts.open(t, b)
	restore("another snapshot", srcB, other(0xB0), false)
	restore("that snapshot again", srcB, other(0xB0), true)
	if srcB.Local() == nil {
		return
	}
	// A working set extended (recorded again, one page more) replaces
	// ws.json: the session still fits, the working set kept with it does
	// not, and the restore installs the new one, not the one it began to
	// read before it checked.
	extended, err := b.WriteWorkingSet(append(slices.Clone(confTrace), confOutsideWS))
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Prepare(context.Background(), Bulk, srcB, 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	// The page the extension added is in place: reading it faults to no
	// pager.
	if b := m.Region.Bytes()[confOutsideWS*snapshot.PageSize]; b != 0xB0 {
		t.Fatalf("the extended working set's page reads %#x", b)
	}
	if st := m.Stats(); st.WSKept || !st.PagerAhead || st.WSPages != extended.Pages || st.Faults != 0 {
		t.Fatalf("after the extension: working set kept %v, session ahead %v, %d pages installed (want %d), %d faults (want 0)",
			st.WSKept, st.PagerAhead, st.WSPages, extended.Pages, st.Faults)
	}
	m.Region.Free()
	restoreKept("and again", srcB, other(0xB0), true, true, extended.Pages)
	if err := os.RemoveAll(b.Dir); err != nil {
		t.Fatal(err)
	}
	c, _ := confSnapshotAt(t, b.Dir, "c", other(0xC0))
	restore("a snapshot replaced under the same directory", ts.open(t, c), other(0xC0), false)
}

// startPager starts a pager process for the test.
func startPager(t *testing.T) *pager.Pager {
	t.Helper()
	p, err := pager.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// testSpare: a bulk restore that left the pool without a region of its
// function asks for a spare once (Restorer.Spare), which lands in the
// pool with its working-set pages mapped and a pager session opened
// ahead, so the next restore drops no page and hands no session over; a
// restore that leaves a pooled region behind asks for none, nor does one
// whose spare the pool could not keep. A spare that fails (a damaged local
// working set) is dropped and not counted as a request's corrupt restore.
func testSpare(t *testing.T, p *pager.Pager, ts testSource) {
	snap, ws := confSnapshot(t)
	src := ts.open(t, snap)
	image := confImage()
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	r := &Restorer{Pager: p, Regions: pool, Spares: true}
	prepare := func(what string) *Memory {
		t.Helper()
		m, err := r.Prepare(context.Background(), Bulk, src, 32<<20, false)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Cleanup(m.Region.Free)
		return m
	}
	counts := func(what string, made, failed int64) {
		t.Helper()
		r.WaitSpares()
		if m, f := r.SpareCounts(); m != made || f != failed {
			t.Fatalf("%s: %d spares made, %d failed; want %d, %d", what, m, f, made, failed)
		}
	}
	first := prepare("first restore")
	if first.Stats().Reused {
		t.Fatal("the first restore reused a region from an empty pool")
	}
	// The worker's SpareFunc restores an engine instance over the memory
	// and closes it; here, ready and the region's Free.
	withCalls := 0
	with := func(_ context.Context, m *Memory, s Source, ready func() error) error {
		withCalls++
		if s.String() != src.String() {
			t.Errorf("spare of %s, want %s", s, src)
		}
		if err := ready(); err != nil {
			return err
		}
		if !readAll(m, image) {
			t.Error("a spare's memory differs from the image")
		}
		m.Region.Free()
		return nil
	}
	r.Spare(first, with)
	r.Spare(first, with)
	counts("after the first restore", 1, 0)
	if withCalls != 1 {
		t.Fatalf("the spare's SpareFunc ran %d times, want 1", withCalls)
	}
	if n, _ := pool.Idle(); n != 1 {
		t.Fatalf("%d regions in the pool after a spare, want 1", n)
	}
	// The first instance still runs: the next restore takes the spare.
	second := prepare("restore into the spare")
	st := second.Stats()
	if !st.Reused || !st.PagerAhead || st.Scrub.Dropped != 0 || st.Scrub.Kept != int64(ws.Pages) {
		t.Fatalf("restore into the spare: reused %v, session ahead %v, scrub %+v; want reused, ahead, %d pages kept, none dropped",
			st.Reused, st.PagerAhead, st.Scrub, ws.Pages)
	}
	if !readAll(second, image) {
		t.Fatal("a restore into a spare differs from the image")
	}
	if f := second.Failures(); f != (pager.Failures{}) {
		t.Fatalf("restore into the spare: failures %+v", f)
	}
	// It took the last pooled region: another spare.
	r.Spare(second, nil)
	counts("after a restore that took the spare", 2, 0)
	// With that spare in the pool, and the first instance's region back,
	// a restore leaves one behind: no spare.
	first.Region.Free()
	third := prepare("a restore that leaves a region in the pool")
	r.Spare(third, nil)
	counts("after a restore that left a region in the pool", 2, 0)

	// The pool's room is below the image: no spare.
	small := engine.NewRegionPool(uint64(len(image)) / 2)
	defer small.Close()
	rs := &Restorer{Pager: p, Regions: small, Spares: true}
	m, err := rs.Prepare(context.Background(), Bulk, src, 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	rs.Spare(m, nil)
	rs.WaitSpares()
	m.Region.Free()
	if made, failed := rs.SpareCounts(); made+failed != 0 {
		t.Fatalf("a pool without room for the region: %d spares made, %d failed", made, failed)
	}

	if src.Local() == nil {
		// The store's tiers keep the chunks already read and checked:
		// damage in the remote would not reach the spare.
		return
	}
	fourth := prepare("a restore that takes the last pooled region")
	ts.damage(t, src, snapshot.WSImageFile, 0)
	r.Spare(fourth, nil)
	counts("a spare of a damaged snapshot", 2, 1)
	if n, _ := pool.Idle(); n != 0 {
		t.Fatalf("%d regions in the pool after a failed spare, want 0", n)
	}
	if c := r.CorruptRestores(); c != 0 {
		t.Fatalf("a failed spare counted as %d corrupt restores", c)
	}
}
