package uffd

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func setup(t *testing.T, pages int) (*FD, []byte) {
	t.Helper()
	u, err := Open()
	if err != nil {
		t.Skipf("userfaultfd unavailable (/dev/userfaultfd and the system call both refused): %v", err)
	}
	t.Cleanup(func() { u.Close() })
	mem, err := Mmap(uint64(pages) * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Munmap(mem) })
	if err := u.Register(Addr(mem), uint64(len(mem))); err != nil {
		t.Fatal(err)
	}
	return u, mem
}

func TestMsgLayout(t *testing.T) {
	if MsgSize != 32 {
		t.Fatalf("MsgSize = %d, want 32 (struct uffd_msg)", MsgSize)
	}
}

// TestCopyEEXIST: a Copy over a range with some pages already present
// installs the others and reports only those.
func TestCopyEEXIST(t *testing.T) {
	const pages = 8
	u, mem := setup(t, pages)
	src, err := Mmap(pages * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer Munmap(src)
	for i := range src {
		src[i] = byte(i/PageSize + 1)
	}
	base, sbase := Addr(mem), Addr(src)
	for _, tc := range []struct {
		name      string
		first, n  int
		wantPages int64
	}{
		{"pages 2-3", 2, 2, 2},
		{"page 6", 6, 1, 1},
		{"all, 3 present", 0, pages, pages - 3},
		{"all again", 0, pages, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off := uintptr(tc.first * PageSize)
			n, err := u.Copy(base+off, sbase+off, uint64(tc.n*PageSize))
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.wantPages*PageSize {
				t.Fatalf("Copy installed %d bytes, want %d", n, tc.wantPages*PageSize)
			}
		})
	}
	if !bytes.Equal(mem, src) {
		t.Fatal("region differs from the source after the copies")
	}
}

func TestZeroPage(t *testing.T) {
	u, mem := setup(t, 4)
	src := bytes.Repeat([]byte{7}, PageSize)
	if _, err := u.Copy(Addr(mem)+PageSize, Addr(src), PageSize); err != nil {
		t.Fatal(err)
	}
	// Pages 0, 2, 3 become zero pages; page 1 is present and skipped.
	if err := u.ZeroPage(Addr(mem), 4*PageSize); err != nil {
		t.Fatal(err)
	}
	for p := range 4 {
		want := make([]byte, PageSize)
		if p == 1 {
			want = src
		}
		if !bytes.Equal(mem[p*PageSize:(p+1)*PageSize], want) {
			t.Fatalf("page %d has the wrong content", p)
		}
	}
	mem[0] = 1 // a write to a zero page is an ordinary copy-on-write fault
	if mem[0] != 1 {
		t.Fatal("write to a zero page lost")
	}
}

// TestReadFault takes a fault from inside the kernel (write(2) from the
// region into a pipe): the faulting thread is in a system call and holds
// no P, so this process can serve it without a pager.
func TestReadFault(t *testing.T) {
	u, mem := setup(t, 4)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	done := make(chan error, 1)
	go func() {
		_, err := unix.Write(int(w.Fd()), mem[2*PageSize:3*PageSize])
		done <- err
	}()
	msgs := make([]Msg, 4)
	n, err := u.Read(msgs)
	if err != nil || n < 1 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	m := msgs[0]
	if m.Event != EventPagefault || m.Address&^(PageSize-1) != uint64(Addr(mem))+2*PageSize {
		t.Fatalf("message %+v, want a page fault at %#x", m, Addr(mem)+2*PageSize)
	}
	src := bytes.Repeat([]byte{9}, PageSize)
	if _, err := u.Copy(Addr(mem)+2*PageSize, Addr(src), PageSize); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write from the region: %v", err)
	}
	got := make([]byte, PageSize)
	if _, err := r.Read(got); err != nil || !bytes.Equal(got, src) {
		t.Fatalf("pipe carried %x..., %v; want the copied page", got[:4], err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	u, _ := setup(t, 1)
	done := make(chan error, 1)
	go func() {
		_, err := u.Read(make([]Msg, 1))
		done <- err
	}()
	u.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close = %v, want os.ErrClosed", err)
	}
	if err := u.Wake(0, PageSize); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Wake after Close = %v, want os.ErrClosed", err)
	}
}
