package engine

import (
	"bytes"
	"slices"
	"testing"
)

// A freed region goes back to the pool and is lent again only to the same
// key and cap; a region marked NoReuse is unmapped instead.
func TestRegionPoolReuse(t *testing.T) {
	p := NewRegionPool(1 << 30)
	defer p.Close()
	a, err := p.Get("f", 64*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if a.Reused() {
		t.Fatal("new region reports Reused")
	}
	a.Touch(8 * PageSize)
	aAddr := a.Addr()
	a.Free()
	if n, b := p.Idle(); n != 1 || b != 8*PageSize {
		t.Fatalf("Idle = %d regions, %d bytes; want 1, %d", n, b, 8*PageSize)
	}
	for _, tc := range []struct {
		key   string
		limit uint64
	}{{"g", 64 * PageSize}, {"f", 32 * PageSize}} {
		r, err := p.Get(tc.key, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if r.Addr() == aAddr || r.Reused() {
			t.Fatalf("Get(%q, %d) reused another key's or cap's region", tc.key, tc.limit)
		}
		r.NoReuse()
		r.Free()
	}
	b, err := p.Get("f", 64*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if b.Addr() != aAddr || !b.Reused() || b.Size() != 0 {
		t.Fatalf("Get did not lend back the idle region reset (same mapping %v, reused %v, size %d)", b.Addr() == aAddr, b.Reused(), b.Size())
	}
	// A late second Free by the previous owner must not release the
	// mapping now lent to b.
	a.Free()
	b.Bytes()[0] = 1
	if n, _ := p.Idle(); n != 0 {
		t.Fatal("a stale Free put the lent region back in the pool")
	}
	if n, _ := p.Idle(); n != 0 {
		t.Fatalf("pool still holds %d regions after lending its only one", n)
	}
	b.NoReuse()
	b.Free()
	if n, _ := p.Idle(); n != 0 {
		t.Fatal("a NoReuse region went back to the pool")
	}
}

// The pool unmaps the least recently freed regions past its budget.
func TestRegionPoolBudget(t *testing.T) {
	p := NewRegionPool(10 * PageSize)
	defer p.Close()
	var rs []*Region
	var addrs []uintptr
	for range 3 {
		r, err := p.Get("f", 16*PageSize)
		if err != nil {
			t.Fatal(err)
		}
		r.Touch(4 * PageSize)
		rs = append(rs, r)
		addrs = append(addrs, r.Addr())
	}
	for _, r := range rs {
		r.Free()
	}
	if n, b := p.Idle(); n != 2 || b != 8*PageSize {
		t.Fatalf("Idle = %d regions, %d bytes; want 2, %d", n, b, 8*PageSize)
	}
	got, _ := p.Get("f", 16*PageSize)
	if got.Addr() != addrs[2] {
		t.Fatal("Get did not lend the most recently freed region")
	}
	big, _ := p.Get("f", 16*PageSize)
	big.Touch(16 * PageSize) // larger than the whole budget
	big.Free()
	if n, _ := p.Idle(); n != 0 {
		t.Fatalf("pool kept a region larger than its budget (%d idle)", n)
	}
}

// Scrub keeps the pages the caller will overwrite, drops other pages of the
// image (they read as missing: zero here, where no userfaultfd serves
// them), clears hole pages and pages past the image in place, and leaves
// untouched pages alone.
func TestScrub(t *testing.T) {
	p := NewRegionPool(1 << 30)
	defer p.Close()
	r, err := p.Get("f", 64*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	mem := r.Bytes()
	r.Reallocate(20 * PageSize)
	for i := range mem[:20*PageSize] {
		mem[i] = 0xAA
	}
	r.Free()
	r, _ = p.Get("f", 64*PageSize)
	if &r.Bytes()[0] != &mem[0] {
		t.Fatal("region not reused")
	}
	keep := func(p int) bool { return p == 2 || p == 3 || p == 9 }
	zero := func(p int) bool { return p == 5 }
	st, err := r.Scrub(10*PageSize, keep, zero)
	if err != nil {
		t.Fatal(err)
	}
	// Pages 0..19 were mapped: 3 kept, 5 and 10..19 cleared, the other 6 of
	// the image dropped.
	if want := (ScrubStats{Kept: 3, Dropped: 6, Cleared: 11}); st != want {
		t.Fatalf("Scrub = %+v, want %+v", st, want)
	}
	present, err := presentPages(mem[:64*PageSize])
	if err != nil {
		t.Fatal(err)
	}
	var mapped []int
	for p, ok := range present {
		if ok {
			mapped = append(mapped, p)
		}
	}
	want := []int{2, 3, 5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	if !slices.Equal(mapped, want) {
		t.Fatalf("mapped pages after Scrub %v, want %v", mapped, want)
	}
	if err := r.Touch(64 * PageSize); err != nil { // to read the untouched pages below
		t.Fatal(err)
	}
	zeros := make([]byte, PageSize)
	for p := range 64 {
		pg := mem[p*PageSize : (p+1)*PageSize]
		if keep(p) {
			if pg[0] != 0xAA {
				t.Fatalf("kept page %d lost its contents", p)
			}
			continue
		}
		if !bytes.Equal(pg, zeros) {
			t.Fatalf("page %d still holds the previous instance's bytes", p)
		}
	}
	r.Free()
}

// A region its owner prescrubbed before freeing it comes back scrubbed:
// the next Scrub with the same keep finds every page left mapped kept or
// cleared and drops nothing more; a Scrub whose keep no longer keeps a
// page the prescrub kept scrubs in full and drops it.
func TestPrescrub(t *testing.T) {
	p := NewRegionPool(1 << 30)
	defer p.Close()
	r, err := p.Get("f", 64*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	mem := r.Bytes()
	fill := func(r *Region) {
		b := r.Reallocate(20 * PageSize)
		for i := range b {
			b[i] = 0xAA
		}
	}
	fill(r)
	keep := func(p int) bool { return p == 2 || p == 3 || p == 9 }
	r.Prescrub(10*PageSize, keep, nil)
	r.Free()
	zeros := make([]byte, PageSize)
	for p := range 20 {
		if pg := mem[p*PageSize : (p+1)*PageSize]; !keep(p) && !bytes.Equal(pg, zeros) {
			t.Fatalf("page %d still holds the previous instance's bytes after Prescrub", p)
		}
	}

	r, _ = p.Get("f", 64*PageSize)
	st, err := r.Scrub(10*PageSize, keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ScrubStats{Kept: 3}); st != want {
		t.Fatalf("Scrub after Prescrub = %+v, want %+v", st, want)
	}
	// This owner writes everywhere again and prescrubs for the same keep;
	// the next one keeps page 2 only.
	fill(r)
	r.Prescrub(10*PageSize, keep, nil)
	r.Free()
	r, _ = p.Get("f", 64*PageSize)
	defer r.Free()
	st, err = r.Scrub(10*PageSize, func(p int) bool { return p == 2 }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ScrubStats{Kept: 1, Dropped: 2, Cleared: 10}); st != want {
		t.Fatalf("Scrub with another keep = %+v, want %+v", st, want)
	}
	for _, p := range []int{3, 9} {
		if !bytes.Equal(mem[p*PageSize:(p+1)*PageSize], zeros) {
			t.Fatalf("page %d, kept by the prescrub but not by this Scrub, still holds the previous bytes", p)
		}
	}
	// An owner that writes and frees without a Prescrub passes on no
	// prescrub, even one it inherited: the next Scrub reads the page map.
	r2, _ := p.Get("g", 64*PageSize)
	fill(r2)
	r2.Prescrub(10*PageSize, keep, nil)
	r2.Free()
	r2, _ = p.Get("g", 64*PageSize)
	fill(r2)
	r2.Free()
	r2, _ = p.Get("g", 64*PageSize)
	defer r2.Free()
	if st, err := r2.Scrub(10*PageSize, keep, nil); err != nil || st.Dropped != 7 {
		t.Fatalf("Scrub after an owner that did not prescrub = %+v, %v; want 7 pages dropped", st, err)
	}
}

// A region that was never lent by a pool is left alone.
func TestScrubNewRegion(t *testing.T) {
	r, err := NewRegion(4 * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	if err := r.Touch(PageSize); err != nil {
		t.Fatal(err)
	}
	r.Bytes()[0] = 1
	if st, err := r.Scrub(0, nil, nil); err != nil || st != (ScrubStats{}) || r.Bytes()[0] != 1 {
		t.Fatalf("Scrub of a new region = %+v, %v; byte %d", st, err, r.Bytes()[0])
	}
}

// A closed pool unmaps what is freed into it.
func TestRegionPoolClosed(t *testing.T) {
	p := NewRegionPool(1 << 30)
	r, err := p.Get("f", 4*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	r.Free()
	if n, _ := p.Idle(); n != 0 {
		t.Fatalf("closed pool keeps %d regions", n)
	}
}

// Trim unmaps the oldest idle regions down to a bound, and a limit lowers
// what the pool keeps when regions come back (a worker's memory budget).
func TestRegionPoolTrimAndLimit(t *testing.T) {
	p := NewRegionPool(1 << 30)
	defer p.Close()
	var limit uint64 = 1 << 30
	p.SetLimit(func() uint64 { return limit })
	free := func(key string) {
		r, err := p.Get(key, 16*PageSize)
		if err != nil {
			t.Fatal(err)
		}
		r.Touch(4 * PageSize)
		r.Free()
	}
	free("a")
	free("b")
	free("c")
	if n, b := p.Idle(); n != 3 || b != 12*PageSize {
		t.Fatalf("Idle = %d, %d; want 3 regions, %d bytes", n, b, 12*PageSize)
	}
	p.Trim(5 * PageSize)
	if n, b := p.Idle(); n != 1 || b != 4*PageSize {
		t.Fatalf("after Trim: %d regions, %d bytes; want 1, %d", n, b, 4*PageSize)
	}
	if r, _ := p.Get("c", 16*PageSize); !r.Reused() {
		t.Fatal("Trim dropped the most recently freed region, not the oldest")
	} else {
		r.NoReuse()
		r.Free()
	}
	limit = 3 * PageSize
	free("d")
	if n, _ := p.Idle(); n != 0 {
		t.Fatalf("the pool kept %d regions past its limit", n)
	}
	// OnFree on a freed region runs at once.
	r, err := NewRegion(PageSize)
	if err != nil {
		t.Fatal(err)
	}
	r.Free()
	ran := false
	r.OnFree(func() { ran = true })
	if !ran {
		t.Fatal("OnFree on a freed region never runs")
	}
}

// Scrub reaches pages an owner closed (Fit) past its memory's length: it
// opens what it clears, and they read as zeros to the next owner.
func TestScrubClosedPages(t *testing.T) {
	p := NewRegionPool(1 << 30)
	defer p.Close()
	r, err := p.Get("f", 64*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := 0, r.Reallocate(20*PageSize); i < len(b); i++ {
		b[i] = 0xAA
	}
	r.Free()
	// The next owner's memory is 4 pages: Fit closes the 16 past them,
	// still holding the first owner's bytes.
	r, _ = p.Get("f", 64*PageSize)
	r.Reallocate(4 * PageSize)
	if err := r.Fit(); err != nil || r.Accessible() != 4*PageSize {
		t.Fatalf("Fit: %v, accessible %d", err, r.Accessible())
	}
	r.Free()
	r, _ = p.Get("f", 64*PageSize)
	defer r.Free()
	st, err := r.Scrub(4*PageSize, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ScrubStats{Dropped: 4, Cleared: 16}); st != want {
		t.Fatalf("Scrub = %+v, want %+v", st, want)
	}
	if r.Accessible() < 20*PageSize {
		t.Fatalf("Scrub left %d bytes accessible, want the 20 pages it cleared", r.Accessible())
	}
	for i, b := range r.Bytes()[:20*PageSize] {
		if b != 0 {
			t.Fatalf("byte %d is %#x after Scrub, want 0", i, b)
		}
	}
}
