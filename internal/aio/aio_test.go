package aio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const page = 4096

// testFile writes n bytes of a pattern to a new file and returns its path
// and contents.
func testFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i/page)
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// openDirect opens path with O_DIRECT, after evicting it from the page
// cache, or skips the test on a file system that refuses O_DIRECT.
func openDirect(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		t.Skip("the file system refuses O_DIRECT")
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// aligned returns n bytes of page-aligned memory.
func aligned(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// TestReadAt: a direct read returns the file's bytes at the offset asked,
// and a second Wait returns the same.
func TestReadAt(t *testing.T) {
	path, data := testFile(t, 57*page)
	fd := openDirect(t, path)
	for _, off := range []int{0, 3 * page} {
		buf := aligned(t, 57*page-off)
		r, err := ReadAt(fd, buf, int64(off))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			n, err := r.Wait()
			if err != nil || n != len(buf) {
				t.Fatalf("offset %d, wait %d: %d bytes, %v; want %d", off, i, n, err, len(buf))
			}
		}
		if !bytes.Equal(buf, data[off:]) {
			t.Fatalf("offset %d: bytes differ from the file's", off)
		}
	}
}

// TestReadAtEOF: a read past the end of the file returns what there was.
func TestReadAtEOF(t *testing.T) {
	path, data := testFile(t, 2*page)
	fd := openDirect(t, path)
	buf := aligned(t, 4*page)
	r, err := ReadAt(fd, buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Wait(); err != nil || n != len(data) || !bytes.Equal(buf[:n], data) {
		t.Fatalf("%d bytes, %v; want the file's %d", n, err, len(data))
	}
}

// TestReadAtErrors: a closed descriptor fails the submission, a misaligned
// direct read fails its Wait, and neither keeps a context busy.
func TestReadAtErrors(t *testing.T) {
	path, _ := testFile(t, 2*page)
	fd := openDirect(t, path)
	buf := aligned(t, 2*page)
	if r, err := ReadAt(fd, buf, 0); err != nil {
		t.Fatal(err)
	} else if _, err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	before := contexts.Len() // at least the one just used
	if _, err := ReadAt(-1, make([]byte, page), 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("read of fd -1: %v, want EBADF", err)
	}
	r, err := ReadAt(fd, buf[1:page+1], 0) // O_DIRECT needs alignment
	if err == nil {
		_, err = r.Wait()
	}
	if !errors.Is(err, unix.EINVAL) || errors.Is(err, ErrInFlight) {
		t.Fatalf("misaligned direct read: %v, want EINVAL", err)
	}
	if after := contexts.Len(); after < before {
		t.Fatalf("%d idle contexts after, %d before: a failed read kept one", after, before)
	}
}

// TestReadAtBuffered: on a file without O_DIRECT the read happens inside
// ReadAt and is as correct.
func TestReadAtBuffered(t *testing.T) {
	path, data := testFile(t, 5*page+100)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, len(data))
	r, err := ReadAt(int(f.Fd()), buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Wait(); err != nil || n != len(data) || !bytes.Equal(buf, data) {
		t.Fatalf("%d bytes, %v", n, err)
	}
	if r, err := ReadAt(int(f.Fd()), nil, 0); err != nil {
		t.Fatal(err)
	} else if n, err := r.Wait(); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
}

// TestReadAtConcurrent: more reads in flight at once than the pool keeps
// contexts each get their own bytes, and the pool keeps at most keepIdle.
func TestReadAtConcurrent(t *testing.T) {
	const reads = 3 * keepIdle
	path, data := testFile(t, reads*page)
	fd := openDirect(t, path)
	var wg sync.WaitGroup
	inflight := make([]*Read, reads)
	bufs := make([][]byte, reads)
	for i := range reads {
		bufs[i] = aligned(t, page)
		r, err := ReadAt(fd, bufs[i], int64(i*page))
		if err != nil {
			t.Fatal(err)
		}
		inflight[i] = r
	}
	for i := range reads {
		wg.Go(func() {
			if n, err := inflight[i].Wait(); err != nil || n != page || !bytes.Equal(bufs[i], data[i*page:(i+1)*page]) {
				t.Errorf("read %d: %d bytes, %v, or wrong bytes", i, n, err)
			}
		})
	}
	wg.Wait()
	if n := contexts.Len(); n > keepIdle {
		t.Fatalf("%d idle contexts, at most %d kept", n, keepIdle)
	}
}
