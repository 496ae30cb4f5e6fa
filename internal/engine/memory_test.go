package engine

import (
	"runtime/debug"
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
	if err := r.Touch(64 * PageSize); err != nil {
		t.Fatal(err)
	}
	if got, err := residentPages(r.Bytes()); err != nil || len(got) != 0 {
		t.Fatalf("Touch made pages resident: %v, %v", got, err)
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

// sink keeps faults' read from being optimised away.
var sink byte

// faults reports whether reading *b faults.
func faults(b *byte) (faulted bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { faulted = recover() != nil }()
	sink = *b
	return false
}

// A region reserves 4 GiB and a guard; only what the memory has grown to,
// or a restore declared it fills, is accessible. Fit closes what lies past
// the memory's length again, keeping its contents for a later grow.
func TestRegionLayout(t *testing.T) {
	r, err := NewRegion(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	resv := r.Reserved()
	if len(resv) != MemoryReservation || &resv[0] != &r.Bytes()[0] {
		t.Fatalf("reservation of %d bytes at the memory's start: %v", len(resv), &resv[0] == &r.Bytes()[0])
	}
	open := func(want uint64) {
		t.Helper()
		if got := r.Accessible(); got != want {
			t.Fatalf("accessible %d bytes, want %d", got, want)
		}
		if want > 0 && faults(&resv[want-1]) {
			t.Fatalf("the last accessible byte (%d) faults", want-1)
		}
		for _, off := range []uint64{want, want + PageSize, 1 << 20, MemoryReservation - 1} {
			if off < uint64(len(resv)) && !faults(&resv[off]) {
				t.Fatalf("byte %d, past the %d accessible, does not fault", off, want)
			}
		}
	}
	open(0)
	mem := r.Reallocate(3 * WasmPageSize)
	open(3 * WasmPageSize)
	mem[0] = 7
	if err := r.Touch(5*WasmPageSize + 1); err != nil {
		t.Fatal(err)
	}
	open(5*WasmPageSize + PageSize)
	r.Bytes()[4*WasmPageSize] = 9
	if err := r.Fit(); err != nil {
		t.Fatal(err)
	}
	open(3 * WasmPageSize)
	if b := r.Reallocate(5 * WasmPageSize); b == nil || b[0] != 7 || b[4*WasmPageSize] != 9 {
		t.Fatal("a grow after Fit lost the pages' contents")
	}
	open(5 * WasmPageSize)
	if r.Reallocate(2<<20) != nil {
		t.Fatal("a grow past the cap was allowed")
	}
	open(5 * WasmPageSize)
}
