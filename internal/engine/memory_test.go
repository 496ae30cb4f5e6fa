package engine

import (
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages lists the pages of mem that are resident (mincore).
func residentPages(mem []byte) ([]int, error) {
	vec := make([]byte, (len(mem)+PageSize-1)/PageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return nil, errno
	}
	var pages []int
	for i, v := range vec {
		if v&1 != 0 {
			pages = append(pages, i)
		}
	}
	return pages, nil
}

// Populate makes exactly the pages of its range present, without writing
// them; mincore sees them and nothing else.
func TestPopulateResident(t *testing.T) {
	r, err := NewRegion(64 * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	if got, err := residentPages(r.Bytes()); err != nil || len(got) != 0 {
		t.Fatalf("fresh region: resident %v, %v", got, err)
	}
	r.Populate(3*PageSize+100, 2*PageSize) // pages 3..5: the range starts mid-page
	r.Bytes()[10*PageSize] = 1             // a write faults page 10 in
	got, err := residentPages(r.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 4, 5, 10}; !slices.Equal(got, want) {
		t.Fatalf("resident pages %v, want %v (kernel without MADV_POPULATE_WRITE?)", got, want)
	}
	for i, b := range r.Bytes()[3*PageSize : 6*PageSize] {
		if b != 0 {
			t.Fatalf("populated byte %d is %d, want 0", i, b)
		}
	}
}

func TestRegionCap(t *testing.T) {
	r, err := NewRegion(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	if b := r.Reallocate(2 << 20); b != nil || !r.grewPastLimit() {
		t.Fatal("a grow past the cap was allowed")
	}
	if b := r.Reallocate(1 << 20); len(b) != 1<<20 {
		t.Fatal("a grow within the cap failed")
	}
}
