package pager

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/snapshot"
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
	// KindFile reads a (possibly sparse) image file passed as the first
	// source descriptor; page at region offset o is at file offset o. An
	// optional second descriptor is the snapshot's page checksum table
	// (one little-endian CRC-32C per 4 KiB page); pages read are then
	// verified and a mismatch fails the read with errdefs.ErrCorrupt.
	KindFile = 1
)

// openSource builds the source of a serve request from its descriptors,
// which it takes ownership of (closing them on error); a KindStore source
// reads from a store of stores.
func openSource(kind uint8, files []*os.File, params []byte, stores *storeCache) (Source, error) {
	switch kind {
	case KindFile:
		switch len(files) {
		case 1:
			return newFileSource(files[0])
		case 2:
			return newCheckedFileSource(files[0], files[1])
		}
		closeAll(files)
		return nil, fmt.Errorf("file source wants 1 or 2 descriptors, got %d: %w", len(files), errdefs.ErrInvalid)
	case KindStore:
		return newStoreSource(files, params, stores)
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
// file's data extents once (snapshot.DataExtents), so hole pages become
// zero pages without a read.
type fileSource struct {
	f    *os.File
	size int64
	// data holds the file's data extents, in order; nil means the file
	// system cannot tell, so every page is read.
	data []snapshot.Extent
	// crcs, if set, holds each page's CRC-32C; reads are verified.
	crcs snapshot.CRCTable
}

var _ Source = (*fileSource)(nil)

func newFileSource(f *os.File) (*fileSource, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat image: %w", err)
	}
	s := &fileSource{f: f, size: fi.Size()}
	s.data, err = snapshot.DataExtents(f, s.size)
	if err != nil {
		s.data = nil // fall back to reading every page
	}
	return s, nil
}

// Size is the image's size: with a checksum table, the pages the table
// covers, so that pages a truncated file lost are read (and refused) rather
// than zero-filled as memory grown past the image.
func (s *fileSource) Size() int64 {
	if s.crcs != nil {
		return max(s.size, int64(len(s.crcs))*pageSize)
	}
	return s.size
}

func (s *fileSource) Zero(off int64) bool {
	if s.data == nil {
		return false
	}
	end := off + pageSize
	// First extent ending after off.
	i := sort.Search(len(s.data), func(i int) bool { return s.data[i].End() > off })
	hole := i == len(s.data) || s.data[i].Off >= end
	if hole && s.crcs != nil {
		// A hole is trusted only where the snapshot recorded a zero page:
		// a data page punched into a hole (damage, or a tampered file)
		// is read instead, and fails its checksum.
		return s.crcs.Zero(off / pageSize)
	}
	return hole
}

func (s *fileSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.f.ReadAt(p, off)
	if err == io.EOF {
		err = nil
	}
	if err == nil && s.crcs != nil {
		for i := 0; i+pageSize <= n; i += pageSize {
			pg := (off + int64(i)) / pageSize
			if !s.crcs.Check(pg, p[i:i+pageSize]) {
				return n, fmt.Errorf("image page %d fails its checksum: %w", pg, errdefs.ErrCorrupt)
			}
		}
		// Pages past the end of a truncated image must not be served
		// unchecked: they read as zeros, which only a zero page's checksum
		// accepts.
		for i := n - n%pageSize; i < len(p); i += pageSize {
			pg := (off + int64(i)) / pageSize
			if pg < int64(len(s.crcs)) && !s.crcs.Zero(pg) {
				return n, fmt.Errorf("image page %d lies past the end of the image file: %w", pg, errdefs.ErrCorrupt)
			}
		}
	}
	return n, err
}

// newCheckedFileSource is newFileSource with a page checksum table.
func newCheckedFileSource(img, table *os.File) (*fileSource, error) {
	// pread, not read: the descriptor's offset is shared with the client
	// and with a standby pager that may be handed the same file.
	var b []byte
	fi, err := table.Stat()
	if err == nil && (fi.Size() < 0 || fi.Size() > 4*(maxRegion/pageSize)) {
		// Sized before it is read: no table of a region the pager can
		// serve is larger.
		err = fmt.Errorf("%d bytes, more than a 4 GiB region's", fi.Size())
	}
	if err == nil {
		b = make([]byte, fi.Size())
		_, err = table.ReadAt(b, 0)
		if err == io.EOF {
			err = nil
		}
	}
	table.Close()
	var crcs snapshot.CRCTable
	if err == nil {
		crcs, err = snapshot.ParseCRCTable(b)
	}
	if err != nil {
		img.Close()
		return nil, fmt.Errorf("read page checksum table: %v: %w", err, errdefs.ErrCorrupt)
	}
	s, err := newFileSource(img)
	if err != nil {
		return nil, err
	}
	s.crcs = crcs
	return s, nil
}

func (s *fileSource) Close() error { return s.f.Close() }
