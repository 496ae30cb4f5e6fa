package snapshot

import (
	"encoding/json"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// The overflow of issue 18: Start+Count wraps to a negative number, which
// an unguarded "Start+Count > pages" lets through.
const overflowWS = `{"runs":[{"start":9223372036854775807,"count":1}],"pages":1,"crc":0}`

// TestWorkingSetOverflowRejected is the reproduction of issue 18 item 2: a
// run whose end overflows must be refused, not handed to the restores.
func TestWorkingSetOverflowRejected(t *testing.T) {
	s, _ := writeTest(t)
	for _, ws := range []string{
		overflowWS,
		`{"runs":[{"start":1,"count":9223372036854775807}],"pages":9223372036854775807}`,
		`{"runs":[{"start":0,"count":2},{"start":1,"count":2}],"pages":4}`,                 // overlap
		`{"runs":[{"start":4,"count":1},{"start":0,"count":1}],"pages":2}`,                 // out of order
		`{"runs":[{"start":0,"count":32}],"pages":32,"x":` + strconv.Quote("y") + `}`,      // whole image: valid
		`{"runs":[{"start":0,"count":32},{"start":0,"count":32}],"pages":64}`,              // repeated
		`{"runs":[{"start":-9223372036854775808,"count":-9223372036854775808}],"pages":0}`, // negative
	} {
		if err := os.WriteFile(s.Path(WSMetaFile), []byte(ws), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := s.WorkingSet()
		if ws == `{"runs":[{"start":0,"count":32}],"pages":32,"x":"y"}` {
			if err != nil || got.Pages != 32 {
				t.Fatalf("whole-image working set: %v, %v", got, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrCorrupt) {
			t.Fatalf("ws.json %s: WorkingSet = %+v, %v; want ErrCorrupt", ws, got, err)
		}
	}
}

// checkWorkingSet asserts what every accepted working set guarantees to
// the restores: runs in order, inside the image, adding up to Pages, and
// ws.img no larger than the image.
func checkWorkingSet(t *testing.T, ws *WorkingSet, pages int) {
	t.Helper()
	end, n := 0, 0
	for _, r := range ws.Runs {
		if r.Start < end || r.Count <= 0 || r.Start+r.Count > pages {
			t.Fatalf("accepted run %+v (previous end %d, %d pages)", r, end, pages)
		}
		end, n = r.Start+r.Count, n+r.Count
	}
	if n != ws.Pages || ws.Bytes() > int64(pages)*PageSize || ws.Bytes() < 0 {
		t.Fatalf("accepted %d pages (%d bytes) for runs of %d in an image of %d", ws.Pages, ws.Bytes(), n, pages)
	}
}

// FuzzDecodeWorkingSet: any ws.json is an ErrCorrupt error or a working
// set every restore can index without a bounds check of its own.
func FuzzDecodeWorkingSet(f *testing.F) {
	f.Add([]byte(overflowWS), 32)
	f.Add([]byte(`{"runs":[{"start":0,"count":3},{"start":5,"count":2}],"pages":5,"crc":7}`), 32)
	f.Add([]byte(`{"runs":[],"pages":0}`), 0)
	f.Add([]byte(`{"runs":[{"start":1099511627776,"count":1}],"pages":1}`), MaxPages)
	f.Add([]byte(`{"runs":[{"start":0,"count":1}],"pages":1099511627776}`), MaxPages)
	f.Add([]byte(`{`), 1)
	f.Fuzz(func(t *testing.T, b []byte, pages int) {
		if pages < 0 || pages > MaxPages {
			return // the caller's image: Open validated it
		}
		ws, err := DecodeWorkingSet(b, pages)
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		checkWorkingSet(t, ws, pages)
	})
}

// FuzzDecodeMeta: any meta.json is an ErrCorrupt error or metadata whose
// sizes are within wasm32's and agree with each other.
func FuzzDecodeMeta(f *testing.F) {
	good, _ := json.Marshal(Meta{Version: FormatVersion, ID: "s", State: engine.State{Pages: 2, Globals: []uint64{1}}, ImageSize: 2 * engine.WasmPageSize, DataPages: 3})
	f.Add(good)
	f.Add([]byte(`{"version":1,"state":{"Pages":4294967295},"image_size":281474976645120}`))
	f.Add([]byte(`{"version":1,"state":{"Pages":65537},"image_size":4295032832}`))
	f.Add([]byte(`{"version":1,"state":{"Pages":1},"image_size":65536,"data_pages":-1}`))
	f.Add([]byte(`{"version":1,"state":{"Pages":1},"image_size":65536,"request":-5}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if m.State.Pages > MaxWasmPages || m.ImageSize != int64(m.State.Pages)*engine.WasmPageSize ||
			m.DataPages < 0 || m.DataPages > m.ImageSize/PageSize || CRCTableSize(m) > 4*MaxPages || m.Request < 0 {
			t.Fatalf("accepted inconsistent meta %+v", m)
		}
	})
}

// FuzzDecodeCRCs: any pages.crc is an ErrCorrupt error or exactly one
// checksum per page of the image.
func FuzzDecodeCRCs(f *testing.F) {
	table := make([]byte, 4*32)
	for i := range table {
		table[i] = byte(i)
	}
	f.Add(table, uint32(2), crc32.Checksum(table, castagnoli))
	f.Add(table[:4], uint32(1), uint32(0))
	f.Add([]byte{}, uint32(0), crc32.Checksum(nil, castagnoli))
	f.Add([]byte{}, uint32(math.MaxUint32), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, wasmPages uint32, sum uint32) {
		meta := Meta{Version: FormatVersion, State: engine.State{Pages: wasmPages}, ImageSize: int64(wasmPages) * engine.WasmPageSize, CRCSum: sum}
		if _, err := DecodeMeta(mustJSON(t, meta)); err != nil {
			return // New is only called with validated metadata
		}
		crcs, err := DecodeCRCs(meta, b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if int64(len(crcs)) != meta.ImageSize/PageSize {
			t.Fatalf("%d checksums for %d pages", len(crcs), meta.ImageSize/PageSize)
		}
		s := &Snapshot{Meta: meta, crcs: crcs}
		// Indexing by any page number is answered, never a panic.
		for _, p := range []int{-1, 0, len(crcs) - 1, len(crcs), math.MaxInt} {
			_ = s.VerifyPage(p, make([]byte, PageSize))
			_ = s.VerifyPages(p, make([]byte, PageSize))
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenChecksSizesBeforeReading: a meta.json claiming more memory than
// wasm32 has is refused before any other file is read, and a pages.crc
// larger than the image it describes is refused without reading it (here a
// sparse file of 1 GiB, which the old Open read whole).
func TestOpenChecksSizesBeforeReading(t *testing.T) {
	s, _ := writeTest(t)
	// 2^40 pages of 4 KiB (2^28 wasm pages): more than a uint32 field can
	// say in wasm pages, so say the largest it can.
	huge := Meta{Version: FormatVersion, State: engine.State{Pages: math.MaxUint32}, ImageSize: int64(math.MaxUint32) * engine.WasmPageSize}
	if err := os.WriteFile(s.Path(MetaFile), mustJSON(t, huge), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s.Dir); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("Open of a 2^48-byte claim = %v, want ErrCorrupt", err)
	}

	s, _ = writeTest(t)
	if err := os.Truncate(s.Path(CRCFile), 1<<30); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Open(s.Dir)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("Open with a 1 GiB pages.crc = %v, want ErrCorrupt", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("Open allocated %d bytes for a table it must refuse unread", d)
	}

	// ws.json past its limit is not read either.
	s, _ = writeTest(t)
	if err := os.WriteFile(s.Path(WSMetaFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(s.Path(WSMetaFile), 1<<30); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = s.WorkingSet()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("WorkingSet with a 1 GiB ws.json = %v, want ErrCorrupt", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("WorkingSet allocated %d bytes for a file it must refuse unread", d)
	}
}

// TestWriteModes: a snapshot is the guest's memory in clear, so every file
// and directory it writes is its owner's alone.
func TestWriteModes(t *testing.T) {
	s, _ := writeTest(t)
	if _, err := s.WriteWorkingSet([]int{0, 3, 4}); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, s.Dir)
}

// checkPrivate fails if any file under dir (dir included) is accessible to
// group or others.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n++
		want := FileMode
		if fi.IsDir() {
			want = DirMode
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("only %d entries under %s", n, dir)
	}
}
