package snapshot

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Extent is a range of a file that holds data: Len bytes from Off.
type Extent struct{ Off, Len int64 }

// End is the offset just past the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// DataExtents lists the ranges of the first size bytes of f that hold data
// (SEEK_DATA/SEEK_HOLE), in order: memory.img is sparse, its zero pages are
// holes, and the readers of an image (an eager restore, the pager) skip
// them. A file system that cannot tell holes reports the whole file as
// data; an error means the file could not be asked.
func DataExtents(f *os.File, size int64) ([]Extent, error) {
	out := []Extent{}
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		hole = min(hole, size)
		if hole > data {
			out = append(out, Extent{data, hole - data})
		}
		off = hole
	}
	return out, nil
}

// CRCTable is a page checksum table, the contents of pages.crc: the CRC-32C
// of each 4 KiB page of memory.img, in page order. It is shared by the
// readers of an image that check what they read: a restore (Snapshot) and
// the pager process, which gets the table's file, not the snapshot.
type CRCTable []uint32

// ZeroPageCRC is the CRC-32C of a page of zeros: the checksum of every hole
// of an image.
var ZeroPageCRC = crc32.Checksum(make([]byte, PageSize), castagnoli)

// ParseCRCTable decodes a page checksum table: one little-endian CRC-32C
// per page. A table whose length is not a multiple of 4 is
// errdefs.ErrCorrupt. It does not check the table against a snapshot's
// metadata (DecodeCRCs does).
func ParseCRCTable(b []byte) (CRCTable, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("page checksum table of %d bytes, not a multiple of 4: %w", len(b), errdefs.ErrCorrupt)
	}
	t := make(CRCTable, len(b)/4)
	for i := range t {
		t[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return t, nil
}

// Encode returns the table as pages.crc holds it.
func (t CRCTable) Encode() []byte {
	b := make([]byte, 4*len(t))
	for i, c := range t {
		binary.LittleEndian.PutUint32(b[4*i:], c)
	}
	return b
}

// Check reports whether data, one page, is page number page of the image
// the table describes: page lies in the table and data has its checksum.
func (t CRCTable) Check(page int64, data []byte) bool {
	return page >= 0 && page < int64(len(t)) && crc32.Checksum(data, castagnoli) == t[page]
}

// Zero reports whether the table records page as a page of zeros (a page
// past the table is not).
func (t CRCTable) Zero(page int64) bool {
	return page >= 0 && page < int64(len(t)) && t[page] == ZeroPageCRC
}
