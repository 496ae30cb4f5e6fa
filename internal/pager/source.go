package pager

import (
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Source is where the pager reads a session's pages from. It lives in the
// pager process; the client picks one with the kind byte of the serve
// request and hands over its descriptors and parameters.
//
// Implementations need not be safe for concurrent use: one session's
// goroutine is the only caller.
type Source interface {
	// Size is the image size in bytes; region offsets at or past it are
	// served as zero pages.
	Size() int64
	// Zero reports whether the page at off is known to hold only zeros (a
	// hole in a sparse image), so it can be resolved with UFFDIO_ZEROPAGE
	// without reading anything. Returning false is always correct.
	Zero(off int64) bool
	// ReadAt fills p with the image bytes at off, with io.ReaderAt
	// semantics; bytes past Size read as zeros to the caller.
	ReadAt(p []byte, off int64) (int, error)
	// Close releases the source's descriptors.
	Close() error
}

// Source kinds (the kind byte of a serve request).
const (
	// KindFile reads a (possibly sparse) image file passed as the one
	// source descriptor; page at region offset o is at file offset o.
	KindFile = 1
)

// openSource builds the source of a serve request from its descriptors,
// which it takes ownership of (closing them on error).
func openSource(kind uint8, files []*os.File, params []byte) (Source, error) {
	switch kind {
	case KindFile:
		if len(files) != 1 {
			closeAll(files)
			return nil, fmt.Errorf("file source wants 1 descriptor, got %d: %w", len(files), errdefs.ErrInvalid)
		}
		return newFileSource(files[0])
	case KindStore:
		return newStoreSource(files, params)
	default:
		closeAll(files)
		return nil, fmt.Errorf("unknown page source kind %d: %w", kind, errdefs.ErrInvalid)
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// fileSource serves pages from an image file with pread. It lists the
// file's data extents once (SEEK_DATA/SEEK_HOLE), so hole pages become zero
// pages without a read.
type fileSource struct {
	f    *os.File
	size int64
	// data holds sorted, disjoint [start, end) data extents; nil means
	// the file system cannot tell, so every page is read.
	data [][2]int64
}

var _ Source = (*fileSource)(nil)

func newFileSource(f *os.File) (*fileSource, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat image: %w", err)
	}
	s := &fileSource{f: f, size: fi.Size()}
	s.data, err = dataExtents(int(f.Fd()), s.size)
	if err != nil {
		s.data = nil // fall back to reading every page
	}
	return s, nil
}

// dataExtents lists the non-hole ranges of a sparse file.
func dataExtents(fd int, size int64) ([][2]int64, error) {
	out := [][2]int64{}
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return nil, err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, size)
		if hole > data {
			out = append(out, [2]int64{data, hole})
		}
		off = hole
	}
	return out, nil
}

func (s *fileSource) Size() int64 { return s.size }

func (s *fileSource) Zero(off int64) bool {
	if s.data == nil {
		return false
	}
	end := off + pageSize
	// First extent ending after off.
	i := sort.Search(len(s.data), func(i int) bool { return s.data[i][1] > off })
	return i == len(s.data) || s.data[i][0] >= end
}

func (s *fileSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.f.ReadAt(p, off)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (s *fileSource) Close() error { return s.f.Close() }
