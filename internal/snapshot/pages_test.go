package snapshot

import (
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// DataExtents of a written image cover every non-zero page, lie in order
// within the file, and leave only zeros outside them.
func TestDataExtents(t *testing.T) {
	s, mem := writeTest(t)
	f, err := os.Open(s.Path(ImageFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ext, err := DataExtents(f, s.Meta.ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]bool, len(mem))
	var last int64
	for _, e := range ext {
		if e.Off < last || e.Len <= 0 || e.End() > s.Meta.ImageSize {
			t.Fatalf("extents out of order or outside the image: %+v", ext)
		}
		last = e.End()
		for i := e.Off; i < e.End(); i++ {
			in[i] = true
		}
	}
	for i, b := range mem {
		if b != 0 && !in[i] {
			t.Fatalf("byte %d (page %d) holds data but lies in no extent %+v", i, i/PageSize, ext)
		}
	}
	// Bounded by size: nothing is reported past it.
	ext, err = DataExtents(f, PageSize)
	if err != nil || len(ext) != 1 || ext[0] != (Extent{0, PageSize}) {
		t.Fatalf("extents of the first page: %+v, %v", ext, err)
	}
}

// A file of holes has no extents (an empty list, not an error).
func TestDataExtentsAllHoles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "holes")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(16 * PageSize); err != nil {
		t.Fatal(err)
	}
	ext, err := DataExtents(f, 16*PageSize)
	if err != nil || ext == nil || len(ext) != 0 {
		t.Fatalf("extents of a file of holes: %#v, %v", ext, err)
	}
}

// A table round-trips through Encode and ParseCRCTable; Check and Zero
// answer for pages in the table only.
func TestCRCTable(t *testing.T) {
	s, mem := writeTest(t)
	b, err := os.ReadFile(s.Path(CRCFile))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := ParseCRCTable(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(tab.Encode()) != string(b) || len(tab) != len(mem)/PageSize {
		t.Fatalf("table of %d pages does not round-trip", len(tab))
	}
	page := func(p int) []byte { return mem[p*PageSize : (p+1)*PageSize] }
	if !tab.Check(3, page(3)) || tab.Check(3, page(4)) || tab.Check(-1, page(0)) || tab.Check(int64(len(tab)), page(1)) {
		t.Fatal("Check accepts a wrong page or one outside the table, or refuses the right one")
	}
	if !tab.Zero(1) || tab.Zero(3) || tab.Zero(-1) || tab.Zero(int64(len(tab))) {
		t.Fatal("Zero is wrong for a hole, a data page, or a page outside the table")
	}
	if ZeroPageCRC != crc32.Checksum(make([]byte, PageSize), castagnoli) {
		t.Fatal("ZeroPageCRC is not the checksum of a zero page")
	}
	if _, err := ParseCRCTable(b[:len(b)-1]); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("a table cut mid-entry: %v, want ErrCorrupt", err)
	}
}
