package faultguard

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const page = 4096

// mapFile writes a file of pages pages, each filled with its number plus
// one, maps it privately and truncates it to keep pages. The mapping is
// unmapped when the test ends.
func mapFile(t testing.TB, pages, keep int) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image")
	b := make([]byte, pages*page)
	for i := range pages {
		for j := range page {
			b[i*page+j] = byte(i + 1)
		}
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, len(b), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(mem) })
	if err := os.Truncate(p, int64(keep*page)); err != nil {
		t.Fatal(err)
	}
	return mem
}

// A guarded mapping whose file was truncated: the pages the file still
// covers read as before, each page past its end reads as zeros, once
// replaced keeps what is written to it, and is counted once.
func TestGuardMappingTruncated(t *testing.T) {
	if !Available {
		t.Skip("no cgo")
	}
	mem := mapFile(t, 8, 2)
	m, err := GuardMapping(uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uint64(len(mem)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if mem[0] != 1 || mem[page+5] != 2 {
		t.Fatalf("pages the file covers read %d, %d; want 1, 2", mem[0], mem[page+5])
	}
	if m.Holes() != 0 {
		t.Fatalf("Holes = %d before any page past the end was touched", m.Holes())
	}
	if got := mem[5*page+7]; got != 0 {
		t.Fatalf("a page past the end read %d, want 0", got)
	}
	mem[7*page] = 42 // a write faults the same way
	if mem[7*page] != 42 {
		t.Fatal("a write to a replaced page was lost")
	}
	_ = mem[5*page] // replaced already: no second fault
	if h := m.Holes(); h != 2 {
		t.Fatalf("Holes = %d, want 2", h)
	}
}

// Without a guard on the range, SIGBUS still reaches Go's handler: with
// panic-on-fault the access panics (and is recovered), and without it the
// process dies, as it did before the handler existed. Run in a subprocess.
func TestUnguardedBusReachesGo(t *testing.T) {
	if !Available {
		t.Skip("no cgo")
	}
	if mode := os.Getenv("THAW_BUS_CHILD"); mode != "" {
		busChild(t, mode)
		return
	}
	for _, mode := range []string{"panic", "die"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnguardedBusReachesGo$", "-test.v")
		cmd.Env = append(os.Environ(), "THAW_BUS_CHILD="+mode)
		out, err := cmd.CombinedOutput()
		switch mode {
		case "panic":
			if err != nil || !strings.Contains(string(out), "recovered: ") {
				t.Errorf("panic-on-fault child: %v\n%s", err, out)
			}
		case "die":
			if err == nil || !strings.Contains(string(out), "SIGBUS") {
				t.Errorf("child touching an unguarded hole: %v, want a death by SIGBUS\n%s", err, out)
			}
		}
	}
}

func busChild(t *testing.T, mode string) {
	// Another range is guarded, so the handler is installed and must chain.
	other := mapFile(t, 2, 2)
	g, err := GuardMapping(uintptr(unsafe.Pointer(unsafe.SliceData(other))), uint64(len(other)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Release()
	mem := mapFile(t, 4, 1)
	if mode == "panic" {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			t.Logf("recovered: %v", recover())
		}()
	}
	t.Logf("read %d", mem[3*page])
}
