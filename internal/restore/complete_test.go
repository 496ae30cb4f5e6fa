package restore

import (
	"context"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/snapshot"
)

// TestComplete: after Complete, a bulk restore's memory holds every page
// of the image, data and holes alike, so reading all of it takes no fault;
// the pages the guest wrote meanwhile are kept; Complete works once, and
// not at all for an eager restore. In a new region and in a reused one.
func TestComplete(t *testing.T) {
	p := startPager(t)
	snap, _ := confSnapshot(t)
	image := confImage()
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	r := &Restorer{Pager: p, Regions: pool}
	for _, reused := range []bool{false, true} {
		m, err := r.Prepare(context.Background(), Bulk, Files(snap), 32<<20, false)
		if err != nil {
			t.Fatal(err)
		}
		if m.Stats().Reused != reused {
			t.Fatalf("reused %v, want %v", m.Stats().Reused, reused)
		}
		// A write of the guest's, to a working-set page, before Complete.
		mem := m.Region.Bytes()
		mem[confWSFirstRun*snapshot.PageSize] ^= 0xFF
		done := m.Complete()
		if done == nil {
			t.Fatal("Complete of a bulk restore has nothing to do")
		}
		<-done
		if m.Complete() != nil {
			t.Fatal("a second Complete has work")
		}
		st := m.Stats()
		if st.Completed == 0 || st.CompleteErr != "" {
			t.Fatalf("completed %d bytes, error %q", st.Completed, st.CompleteErr)
		}
		want := append([]byte(nil), image...)
		want[confWSFirstRun*snapshot.PageSize] ^= 0xFF
		if !readAll(m, want) {
			t.Fatal("memory differs from the image (with the guest's write)")
		}
		if got := m.Stats().Faults; got != 0 {
			t.Fatalf("reading the completed memory took %d faults, want 0", got)
		}
		if f := m.Failures(); f != (pager.Failures{}) {
			t.Fatalf("failures %+v", f)
		}
		for i := range mem[:len(image)] {
			mem[i] = 0x5A // garbage for the next restore to overwrite
		}
		m.Region.Free()
	}
	m, err := r.Prepare(context.Background(), Eager, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	if m.Complete() != nil {
		t.Fatal("Complete of an eager restore has work")
	}
}

// TestCompleteDamaged: a data page of memory.img outside the working set
// that fails its checksum stops Complete, which says why, and is not
// installed: the pager refuses it when the guest touches it.
func TestCompleteDamaged(t *testing.T) {
	p := startPager(t)
	snap, _ := confSnapshot(t)
	damageFile(t, Files(snap), snapshot.ImageFile, confOutsideWS*snapshot.PageSize)
	m, err := (&Restorer{Pager: p}).Prepare(context.Background(), Bulk, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	<-m.Complete()
	if st := m.Stats(); !strings.Contains(st.CompleteErr, "checksum") {
		t.Fatalf("complete error %q, want the page's checksum", st.CompleteErr)
	}
	readAll(m, confImage()) // touches the damaged page
	if m.Failures().Corrupt == 0 {
		t.Fatalf("the damaged page was served without being counted: %+v", m.Failures())
	}
}

// TestCompleteReleased: freeing the memory while Complete works stops the
// work and waits for it (no page is installed into a region another
// restore has since), and the region's next restore is the image.
func TestCompleteReleased(t *testing.T) {
	p := startPager(t)
	snap, _ := confSnapshot(t)
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	r := &Restorer{Pager: p, Regions: pool}
	for range 20 {
		m, err := r.Prepare(context.Background(), Bulk, Files(snap), 32<<20, false)
		if err != nil {
			t.Fatal(err)
		}
		done := m.Complete()
		m.Region.Free()
		select {
		case <-done:
		default:
			t.Fatal("Free returned while Complete still worked")
		}
	}
	m, err := r.Prepare(context.Background(), Bulk, Files(snap), 32<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Region.Free()
	if !m.Stats().Reused || !readAll(m, confImage()) {
		t.Fatalf("reused %v, or the memory differs from the image", m.Stats().Reused)
	}
}
