package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// testMemory builds two wasm pages with a few non-zero 4 KiB pages.
func testMemory() []byte {
	mem := make([]byte, 2*engine.WasmPageSize)
	for _, p := range []int{0, 3, 4, 17, 31} {
		for i := 0; i < PageSize; i++ {
			mem[p*PageSize+i] = byte(p + i)
		}
	}
	return mem
}

func writeTest(t *testing.T) (*Snapshot, []byte) {
	t.Helper()
	mem := testMemory()
	meta := Meta{ID: "s1", Function: "f", State: engine.State{Pages: 2, Globals: []uint64{1, 2}, Nanotime: 42}}
	s, err := Write(filepath.Join(t.TempDir(), "s1"), meta, mem)
	if err != nil {
		t.Fatal(err)
	}
	return s, mem
}

func TestWriteOpenRoundTrip(t *testing.T) {
	s, mem := writeTest(t)
	if s.Meta.DataPages != 5 {
		t.Errorf("DataPages = %d, want 5 (zero pages must not be stored)", s.Meta.DataPages)
	}
	o, err := Open(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if o.Meta.State.Nanotime != 42 || len(o.Meta.State.Globals) != 2 {
		t.Errorf("state not preserved: %+v", o.Meta.State)
	}
	img, err := os.ReadFile(o.Path(ImageFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(img) != string(mem) {
		t.Fatal("image differs from memory")
	}
	if err := o.VerifyPages(0, img); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir + ".tmp"); !os.IsNotExist(err) {
		t.Error("temporary directory left behind")
	}
}

func TestOpenDetectsDamage(t *testing.T) {
	cases := map[string]func(dir string){
		"missing meta": func(dir string) { os.Remove(filepath.Join(dir, MetaFile)) },
		"truncated image": func(dir string) {
			os.Truncate(filepath.Join(dir, ImageFile), PageSize)
		},
		"bad crc table": func(dir string) {
			os.WriteFile(filepath.Join(dir, CRCFile), []byte("nonsense"), 0o644)
		},
		"garbage meta": func(dir string) { os.WriteFile(filepath.Join(dir, MetaFile), []byte("{"), 0o644) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			s, _ := writeTest(t)
			damage(s.Dir)
			_, err := Open(s.Dir)
			if !errors.Is(err, errdefs.ErrCorrupt) && !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("Open = %v, want a corrupt or not-found error", err)
			}
		})
	}
}

func TestVerifyPagesDetectsFlippedByte(t *testing.T) {
	s, mem := writeTest(t)
	mem[17*PageSize+5] ^= 1
	if err := s.VerifyPages(0, mem); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("VerifyPages = %v, want ErrCorrupt", err)
	}
}

func TestWorkingSet(t *testing.T) {
	s, mem := writeTest(t)
	if _, err := s.WorkingSet(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("no working set yet: got %v", err)
	}
	trace := []int{17, 3, 4, 0, 5}
	ws, err := s.WriteWorkingSet(trace)
	if err != nil {
		t.Fatal(err)
	}
	want := []Run{{0, 1}, {3, 3}, {17, 1}}
	if len(ws.Runs) != len(want) {
		t.Fatalf("runs = %+v, want %+v", ws.Runs, want)
	}
	for i := range want {
		if ws.Runs[i] != want[i] {
			t.Fatalf("runs = %+v, want %+v", ws.Runs, want)
		}
	}
	got, err := s.WorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(s.Path(WSImageFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckWorkingSetData(got, data); err != nil {
		t.Fatal(err)
	}
	// ws.img holds the pages in page order, copied from the image.
	off := 0
	for _, r := range got.Runs {
		n := r.Count * PageSize
		if string(data[off:off+n]) != string(mem[r.Start*PageSize:r.Start*PageSize+n]) {
			t.Fatalf("run %+v content differs", r)
		}
		off += n
	}
	data[10] ^= 0xff
	if err := s.CheckWorkingSetData(got, data); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("tampered working set accepted: %v", err)
	}
	if err := s.CheckWorkingSetData(got, data[:PageSize]); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("truncated working set accepted: %v", err)
	}
	if err := s.RemoveWorkingSet(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WorkingSet(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatal("working set still present after removal")
	}
}

// A working set rewritten while restores open it is never seen half old,
// half new: every OpenWorkingSet pairs ws.json with its own ws.img, as a
// restore racing the worker's background extension needs (the two used to
// be renamed one after the other, and a restore between them failed).
func TestOpenWorkingSetDuringRewrite(t *testing.T) {
	s, _ := writeTest(t)
	sets := [][]int{{0}, {0, 3, 4}, {17, 3, 4, 0, 5, 31}}
	if _, err := s.WriteWorkingSet(sets[0]); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := range 300 {
			if _, err := s.WriteWorkingSet(sets[i%len(sets)]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for reads := 0; ; reads++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if reads == 0 {
				t.Fatal("no read overlapped the rewrites")
			}
			return
		default:
		}
		ws, err := s.OpenWorkingSet()
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		data := make([]byte, ws.Bytes())
		_, err = ws.Image().ReadAt(data, 0)
		ws.Close()
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		if err := s.CheckWorkingSetData(ws, data); err != nil {
			t.Fatalf("read %d paired ws.json with another ws.img: %v", reads, err)
		}
	}
}

func TestWriteWorkingSetRejectsOutOfRange(t *testing.T) {
	s, _ := writeTest(t)
	if _, err := s.WriteWorkingSet([]int{s.Pages()}); err == nil {
		t.Fatal("page past the image accepted")
	}
}

// ReadPages places each run at its own offset, leaves other pages alone,
// and rejects a damaged page or a run past the image.
func TestReadPages(t *testing.T) {
	s, mem := writeTest(t)
	got := make([]byte, len(mem))
	for i := range got {
		got[i] = 0xee
	}
	if err := s.ReadPages(got, []Run{{Start: 2, Count: 3}, {Start: 31, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	for p := 0; p < len(mem)/PageSize; p++ {
		lo, hi := p*PageSize, (p+1)*PageSize
		read := p >= 2 && p < 5 || p == 31
		if want := mem[lo:hi]; read && string(got[lo:hi]) != string(want) {
			t.Errorf("page %d differs from the image", p)
		}
		if !read && got[lo] != 0xee {
			t.Errorf("page %d was written, not in any run", p)
		}
	}
	if err := s.ReadPages(got, []Run{{Start: s.Pages() - 1, Count: 2}}); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("run past the image: %v, want ErrCorrupt", err)
	}
	f, err := os.OpenFile(s.Path(ImageFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 17*PageSize+5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := s.ReadPages(got, []Run{{Start: 16, Count: 2}}); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("damaged page 17: %v, want ErrCorrupt", err)
	}
}

// TestWriteImageDirect: an image written from page-aligned memory (as a
// region is) bypasses the page cache where the file system allows direct
// I/O, and reads back the same as one written from unaligned memory
// (buffered).
func TestWriteImageDirect(t *testing.T) {
	src := testMemory()
	aligned, err := unix.Mmap(-1, 0, len(src), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(aligned)
	copy(aligned, src)
	unaligned := make([]byte, len(src)+1)[1:]
	copy(unaligned, src)
	dir := t.TempDir()
	for name, mem := range map[string][]byte{"aligned": aligned, "unaligned": unaligned} {
		path := filepath.Join(dir, name)
		crcs, data, err := writeImage(path, mem)
		if err != nil {
			t.Fatal(err)
		}
		img, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(img) != string(src) || data != 5 || len(crcs) != len(src)/PageSize {
			t.Fatalf("%s: image differs from memory, or %d data pages, %d checksums", name, data, len(crcs))
		}
	}
	// Where the file system takes O_DIRECT, the aligned image left no page
	// of its data in the page cache (before the read above: check a fresh
	// write).
	probe, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_WRONLY|unix.O_DIRECT, 0o600)
	if err != nil {
		t.Skipf("%s takes no direct I/O: %v", dir, err)
	}
	probe.Close()
	path := filepath.Join(dir, "fresh")
	if _, _, err := writeImage(path, aligned); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(src), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, len(src)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for p, v := range vec {
		if v&1 != 0 {
			t.Fatalf("page %d of a directly written image is in the page cache", p)
		}
	}
}
