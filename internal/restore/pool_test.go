package restore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// reuseFixture is the hello fixture with its snapshot's image, working set
// and image size, which the region-reuse tests compare memory against.
func reuseFixture(t *testing.T) (*fixture, []byte, *snapshot.WorkingSet, int) {
	t.Helper()
	f := helloFixture(t)
	image, err := os.ReadFile(f.snap.Path(snapshot.ImageFile))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := f.snap.WorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	return f, image, ws, int(f.snap.Meta.ImageSize)
}

// An eager or bulk restore into a region a finished instance left behind,
// every page of which that instance had overwritten with garbage, gives
// the guest exactly the snapshot's memory: the image below its size
// (served lazily where the restore dropped a page) and zeros past it, kept
// pages overwritten in place. The instance then answers as a booted one.
func TestReusedRegionHoldsTheSnapshot(t *testing.T) {
	f, image, ws, size := reuseFixture(t)
	ctx := context.Background()
	for _, mode := range []Mode{Eager, Bulk} {
		t.Run(string(mode), func(t *testing.T) {
			pool := engine.NewRegionPool(1 << 30)
			defer pool.Close()
			r := &Restorer{Pager: f.pager, Regions: pool}
			key := f.snap.Meta.Function + "@" + f.snap.Meta.ModuleSHA
			for round := range 3 {
				// Leave garbage in every page the next restore could
				// reuse, as a finished instance that grew its memory
				// would.
				g, err := pool.Get(key, instCfg.MemoryLimit)
				if err != nil {
					t.Fatal(err)
				}
				grown := g.Reallocate(uint64(size + 64*snapshot.PageSize))
				for i := range grown {
					grown[i] = 0xA5
				}
				g.Free()

				m, err := r.Prepare(ctx, mode, Files(f.snap), instCfg.MemoryLimit, false)
				if err != nil {
					t.Fatal(err)
				}
				st := m.Stats()
				if !st.Reused || st.Scrub.Kept == 0 || st.Scrub.Cleared == 0 {
					t.Fatalf("round %d: restore did not reuse the region's pages: %+v", round, st)
				}
				if mode == Bulk && (st.Scrub.Kept != int64(ws.Pages) || st.Scrub.Dropped == 0) {
					t.Fatalf("round %d: bulk kept %d pages (working set %d), dropped %d", round, st.Scrub.Kept, ws.Pages, st.Scrub.Dropped)
				}
				mem := m.Region.Bytes()
				if !bytes.Equal(mem[:size], image) {
					t.Fatalf("round %d: reused region differs from the image", round)
				}
				if tail := mem[size : size+64*snapshot.PageSize]; bytes.ContainsFunc(tail, func(r rune) bool { return r != 0 }) {
					t.Fatalf("round %d: memory past the image is not zero", round)
				}
				inst, err := f.mod.Restore(ctx, instCfg, &f.snap.Meta.State, m.Region)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := inst.Invoke(ctx, get("/x", "name=thaw"))
				inst.Close(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(resp.Body, f.want) {
					t.Fatalf("round %d: answered %q, booted %q", round, resp.Body, f.want)
				}
			}
		})
	}
}

// A bulk or eager instance that is closed prescrubs its region for the next
// restore of the same snapshot: that restore scrubs nothing more (no page
// dropped or cleared, no page-map read), keeps the pages it overwrites
// (bulk: exactly the working set), and still gives the guest exactly the
// snapshot's memory, though the closed instance had written over every
// page of the image.
func TestPrescrubbedRegionHoldsTheSnapshot(t *testing.T) {
	f, image, ws, size := reuseFixture(t)
	ctx := context.Background()
	for _, mode := range []Mode{Eager, Bulk} {
		t.Run(string(mode), func(t *testing.T) {
			pool := engine.NewRegionPool(1 << 30)
			defer pool.Close()
			r := &Restorer{Pager: f.pager, Regions: pool}
			for round := range 3 {
				m, err := r.Prepare(ctx, mode, Files(f.snap), instCfg.MemoryLimit, false)
				if err != nil {
					t.Fatal(err)
				}
				st := m.Stats()
				if round > 0 && (!st.Reused || st.Scrub.Dropped != 0 || st.Scrub.Cleared != 0 || st.Scrub.Kept == 0 ||
					mode == Bulk && st.Scrub.Kept != int64(ws.Pages)) {
					t.Fatalf("round %d: restore of a prescrubbed region scrubbed again: %+v", round, st.Scrub)
				}
				if st.PagerAhead != (round > 0 && mode == Bulk) {
					t.Fatalf("round %d: pager session opened ahead %v", round, st.PagerAhead)
				}
				mem := m.Region.Bytes()
				if !bytes.Equal(mem[:size], image) {
					t.Fatalf("round %d: region differs from the image", round)
				}
				inst, err := f.mod.Restore(ctx, instCfg, &f.snap.Meta.State, m.Region)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := inst.Invoke(ctx, get("/x", "name=thaw"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(resp.Body, f.want) {
					t.Fatalf("round %d: answered %q, booted %q", round, resp.Body, f.want)
				}
				// Garbage in every page of the image, then close: the
				// release prescrubs.
				for i := range mem[:size] {
					mem[i] = 0xA5
				}
				inst.Close(ctx)
			}
		})
	}
}

// A working set kept open for a region's next restore (Stats.WSKept) goes
// with the session opened ahead that carries it: after each bulk restore
// in one pooled region, of one snapshot, then another, then the first
// again, exactly the one working set kept for the next restore is open,
// and none once the pool is closed.
func TestKeptWorkingSetsClosed(t *testing.T) {
	p := startPager(t)
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	r := &Restorer{Pager: p, Regions: pool}
	dir := t.TempDir()
	a, _ := confSnapshotAt(t, filepath.Join(dir, "a"), "a", confImage())
	b, _ := confSnapshotAt(t, filepath.Join(dir, "b"), "b", confImage())
	// open counts this process's descriptors of a ws.img under dir.
	open := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
			if err == nil && strings.HasPrefix(target, dir) && filepath.Base(target) == snapshot.WSImageFile {
				n++
			}
		}
		return n
	}
	order := []*snapshot.Snapshot{a, a, a, b, b, a}
	for i, snap := range order {
		m, err := r.Prepare(context.Background(), Bulk, Files(snap), 32<<20, false)
		if err != nil {
			t.Fatal(err)
		}
		if kept := i > 0 && snap == order[i-1]; m.Stats().WSKept != kept {
			t.Fatalf("restore %d: working set kept %v, want %v", i, m.Stats().WSKept, kept)
		}
		m.Region.Free()
		if n := open(); n != 1 {
			t.Fatalf("after restore %d: %d ws.img open, want 1 (kept for the next restore)", i, n)
		}
	}
	pool.Close()
	if n := open(); n != 0 {
		t.Fatalf("%d ws.img open after the pool was closed", n)
	}
}
