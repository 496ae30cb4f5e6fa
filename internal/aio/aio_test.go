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

// readOne submits one read and collects it.
func readOne(t *testing.T, fd int, buf []byte, off int64) (int, error) {
	t.Helper()
	b, err := NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Submit(fd, Req{Tag: 3, Buf: buf, Off: off}); err != nil {
		return 0, err
	}
	tag, n, err := b.Next()
	if tag != 3 {
		t.Fatalf("Next: tag %d, want 3", tag)
	}
	return n, err
}

// TestBatch: reads submitted together, and one submitted after others
// ended, each return their own tag with the file's bytes at the offset
// asked; Next with nothing in flight is an error.
func TestBatch(t *testing.T) {
	const reads = 5
	path, data := testFile(t, 3*reads*page)
	fd := openDirect(t, path)
	bufs := make([][]byte, MaxReads)
	for i := range bufs {
		bufs[i] = aligned(t, 2*page)
	}
	b, err := NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Tags out of order, offsets of their own: a read's tag, not its
	// position, says whose bytes it brought.
	var reqs []Req
	for i := range reads {
		tag := MaxReads - 1 - 2*i
		reqs = append(reqs, Req{Tag: tag, Buf: bufs[tag], Off: int64(3 * i * page)})
	}
	if err := b.Submit(fd, reqs...); err != nil {
		t.Fatal(err)
	}
	if b.Pending() != reads {
		t.Fatalf("%d pending, want %d", b.Pending(), reads)
	}
	if err := b.Submit(fd, Req{Tag: reqs[0].Tag, Buf: bufs[0], Off: 0}); err == nil {
		t.Fatal("a second read on a tag in flight was accepted")
	}
	seen := map[int]bool{}
	check := func(want map[int]int64) {
		t.Helper()
		for range want {
			tag, n, err := b.Next()
			off, ok := want[tag]
			if err != nil || n != 2*page || !ok || seen[tag] {
				t.Fatalf("Next: tag %d, %d bytes, %v", tag, n, err)
			}
			seen[tag] = true
			if !bytes.Equal(bufs[tag], data[off:off+2*page]) {
				t.Fatalf("tag %d: bytes differ from the file's at %d", tag, off)
			}
		}
	}
	want := map[int]int64{}
	for _, r := range reqs {
		want[r.Tag] = r.Off
	}
	check(want)
	clear(seen)
	if err := b.Submit(fd, Req{Tag: reqs[0].Tag, Buf: bufs[reqs[0].Tag], Off: page}); err != nil {
		t.Fatal(err)
	}
	check(map[int]int64{reqs[0].Tag: page})
	if tag, _, err := b.Next(); err == nil || tag != -1 {
		t.Fatalf("Next with nothing in flight: tag %d, %v", tag, err)
	}
}

// TestBatchEOF: a read past the end of the file returns what there was.
func TestBatchEOF(t *testing.T) {
	path, data := testFile(t, 2*page)
	fd := openDirect(t, path)
	buf := aligned(t, 4*page)
	if n, err := readOne(t, fd, buf, 0); err != nil || n != len(data) || !bytes.Equal(buf[:n], data) {
		t.Fatalf("%d bytes, %v; want the file's %d", n, err, len(data))
	}
}

// TestBatchErrors: a closed descriptor fails the submission, a misaligned
// direct read fails as a read (not the batch), an empty read, a tag out of
// range or a tag twice in one submission is refused, and none keeps a
// context busy.
func TestBatchErrors(t *testing.T) {
	path, _ := testFile(t, 2*page)
	fd := openDirect(t, path)
	buf := aligned(t, 2*page)
	if _, err := readOne(t, fd, buf, 0); err != nil {
		t.Fatal(err)
	}
	before := contexts.Len() // at least the one just used
	b, err := NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Submit(-1, Req{Buf: buf}); !errors.Is(err, unix.EBADF) {
		t.Fatalf("read of fd -1: %v, want EBADF", err)
	}
	for _, r := range []Req{{Tag: 0}, {Tag: -1, Buf: buf}, {Tag: MaxReads, Buf: buf}} {
		if err := b.Submit(fd, r); err == nil {
			t.Fatalf("read with tag %d of %d bytes accepted", r.Tag, len(r.Buf))
		}
	}
	if err := b.Submit(fd, Req{Tag: 2, Buf: buf[:page]}, Req{Tag: 2, Buf: buf[page:]}); err == nil || b.Pending() != 0 {
		t.Fatalf("two reads with one tag in one submission: %v, %d in flight", err, b.Pending())
	}
	if err := b.Submit(fd, Req{Tag: 1, Buf: buf[1 : page+1]}); err != nil { // O_DIRECT needs alignment
		t.Fatal(err)
	}
	if tag, _, err := b.Next(); tag != 1 || !errors.Is(err, unix.EINVAL) || errors.Is(err, ErrInFlight) {
		t.Fatalf("misaligned direct read: tag %d, %v; want 1, EINVAL", tag, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if after := contexts.Len(); after < before {
		t.Fatalf("%d idle contexts after, %d before: a failed read kept one", after, before)
	}
}

// TestBatchBuffered: on a file without O_DIRECT the read happens inside
// Submit and is as correct.
func TestBatchBuffered(t *testing.T) {
	path, data := testFile(t, 5*page+100)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, len(data))
	if n, err := readOne(t, int(f.Fd()), buf, 0); err != nil || n != len(data) || !bytes.Equal(buf, data) {
		t.Fatalf("%d bytes, %v", n, err)
	}
}

// TestBatchClose: Close collects the reads still in flight, and the
// batch's context can serve the next one.
func TestBatchClose(t *testing.T) {
	path, data := testFile(t, MaxReads*page)
	fd := openDirect(t, path)
	b, err := NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Req
	for i := range MaxReads {
		reqs = append(reqs, Req{Tag: i, Buf: aligned(t, page), Off: int64(i * page)})
	}
	if err := b.Submit(fd, reqs...); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil || b.Pending() != 0 {
		t.Fatalf("Close: %v, %d pending", err, b.Pending())
	}
	for i, r := range reqs {
		if !bytes.Equal(r.Buf, data[i*page:(i+1)*page]) {
			t.Fatalf("read %d had not ended when Close returned", i)
		}
	}
	buf := aligned(t, page)
	if n, err := readOne(t, fd, buf, page); err != nil || n != page || !bytes.Equal(buf, data[page:2*page]) {
		t.Fatalf("read after Close: %d bytes, %v", n, err)
	}
}

// TestBatchConcurrent: more batches in flight at once than the pool keeps
// contexts each get their own bytes, and the pool keeps at most keepIdle.
func TestBatchConcurrent(t *testing.T) {
	const batches = 3 * keepIdle
	path, data := testFile(t, batches*page)
	fd := openDirect(t, path)
	inflight := make([]*Batch, batches)
	bufs := make([][]byte, batches)
	for i := range batches {
		bufs[i] = aligned(t, page)
		b, err := NewBatch()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Submit(fd, Req{Buf: bufs[i], Off: int64(i * page)}); err != nil {
			t.Fatal(err)
		}
		inflight[i] = b
	}
	var wg sync.WaitGroup
	for i := range batches {
		wg.Go(func() {
			defer inflight[i].Close()
			if _, n, err := inflight[i].Next(); err != nil || n != page || !bytes.Equal(bufs[i], data[i*page:(i+1)*page]) {
				t.Errorf("read %d: %d bytes, %v, or wrong bytes", i, n, err)
			}
		})
	}
	wg.Wait()
	if n := contexts.Len(); n > keepIdle {
		t.Fatalf("%d idle contexts, at most %d kept", n, keepIdle)
	}
}
