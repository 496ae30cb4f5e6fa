// Package snapshot stores captured function instances on disk.
//
// A snapshot is a directory:
//
//	meta.json   format version, the instance's State, image geometry, checksums
//	memory.img  the linear memory, page for page at its own offsets; zero pages
//	            are holes (never written, never read from disk)
//	pages.crc   one CRC-32C per 4 KiB page of memory.img, to detect corruption
//	ws.img      optional: the working set, its pages back to back in offset order
//	ws.json     optional: which pages ws.img holds, with its checksum
//	ws.trace    optional: the recorded first-fault order (u32 page numbers)
//
// A snapshot directory is written under a temporary name and renamed into
// place, so a crash never leaves a half snapshot that is later used; the
// working set is likewise published by renaming ws.json last.
package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Modes of what this package writes: a snapshot holds a guest's memory in
// clear (its secrets included), so only the worker's user may read it.
const (
	FileMode os.FileMode = 0o600
	DirMode  os.FileMode = 0o700
)

// FormatVersion is the on-disk format written by this package.
const FormatVersion = 1

// PageSize is the granularity of images, checksums and working sets.
const PageSize = engine.PageSize

// File names inside a snapshot directory.
const (
	MetaFile    = "meta.json"
	ImageFile   = "memory.img"
	CRCFile     = "pages.crc"
	WSImageFile = "ws.img"
	WSMetaFile  = "ws.json"
	WSTraceFile = "ws.trace"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Meta describes a snapshot.
type Meta struct {
	Version   int          `json:"version"`
	ID        string       `json:"id"`
	Function  string       `json:"function"`
	ModuleSHA string       `json:"module_sha256"`
	Created   time.Time    `json:"created"`
	State     engine.State `json:"state"`
	// ImageSize is the length of memory.img: the linear memory's size.
	ImageSize int64 `json:"image_size"`
	// DataPages counts the non-zero pages actually stored.
	DataPages int64 `json:"data_pages"`
	// CRCSum is the CRC-32C of pages.crc itself.
	CRCSum uint32 `json:"crc_sum"`
	// Request is the number of requests the instance had served when it was
	// captured (0: right after initialisation).
	Request int `json:"request"`
}

// Snapshot is an opened, validated snapshot directory.
type Snapshot struct {
	Dir  string
	Meta Meta
	crcs CRCTable
}

// Path returns the path of a file in the snapshot.
func (s *Snapshot) Path(name string) string { return filepath.Join(s.Dir, name) }

// Write stores mem and meta as a new snapshot at dir, atomically. dir must
// not exist.
func Write(dir string, meta Meta, mem []byte) (*Snapshot, error) {
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("snapshot %s already exists", dir)
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, DirMode); err != nil {
		return nil, fmt.Errorf("create snapshot dir: %w", err)
	}
	fail := func(err error) (*Snapshot, error) {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	crcs, data, err := writeImage(filepath.Join(tmp, ImageFile), mem)
	if err != nil {
		return fail(err)
	}
	crcBytes := crcs.Encode()
	if err := writeFileSync(filepath.Join(tmp, CRCFile), crcBytes); err != nil {
		return fail(err)
	}
	meta.Version = FormatVersion
	meta.ImageSize = int64(len(mem))
	meta.DataPages = data
	meta.CRCSum = crc32.Checksum(crcBytes, castagnoli)
	mj, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := writeFileSync(filepath.Join(tmp, MetaFile), mj); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fail(fmt.Errorf("publish snapshot: %w", err))
	}
	_ = atomicfile.SyncDir(filepath.Dir(dir)) // best effort: the snapshot is published
	return &Snapshot{Dir: dir, Meta: meta, crcs: crcs}, nil
}

// writeImage writes the non-zero pages of mem at their own offsets, leaving
// holes for zero pages, and returns every page's checksum.
//
// The image is written with direct I/O when mem is page-aligned (a region
// always is) and the file system takes it: the pages go from the
// instance's memory to the disk without first being copied into the page
// cache, which was most of a deploy's snapshot stage (a 106 MiB image:
// buffered writes 255-450 ms, direct 92-109 ms, the fsync after either
// 60-90 ms). A restore reads the image from the disk then, as it does
// whenever the page cache has dropped it. Anything that refuses direct
// I/O gets buffered writes.
func writeImage(path string, mem []byte) (CRCTable, int64, error) {
	const flags = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	direct := len(mem) > 0 && uintptr(unsafe.Pointer(&mem[0]))%PageSize == 0
	var f *os.File
	var err error = unix.EINVAL
	if direct {
		f, err = os.OpenFile(path, flags|unix.O_DIRECT, FileMode)
	}
	if err != nil {
		direct = false
		f, err = os.OpenFile(path, flags, FileMode)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("create image: %w", err)
	}
	defer f.Close()
	writeAt := func(b []byte, off int64) error {
		_, err := f.WriteAt(b, off)
		if err != nil && direct && errors.Is(err, unix.EINVAL) {
			// Opened for direct I/O, but this write is refused (a block
			// size larger than a page): write buffered from here on.
			direct = false
			if err := buffered(f); err != nil {
				return err
			}
			_, err = f.WriteAt(b, off)
		}
		return err
	}
	n := len(mem) / PageSize
	crcs := make(CRCTable, n)
	var data int64
	runStart := -1
	flush := func(end int) error {
		if runStart < 0 {
			return nil
		}
		err := writeAt(mem[runStart*PageSize:end*PageSize], int64(runStart*PageSize))
		runStart = -1
		return err
	}
	for p := 0; p < n; p++ {
		page := mem[p*PageSize : (p+1)*PageSize]
		if isZero(page) {
			crcs[p] = ZeroPageCRC
			if err := flush(p); err != nil {
				return nil, 0, fmt.Errorf("write image: %w", err)
			}
			continue
		}
		crcs[p] = crc32.Checksum(page, castagnoli)
		data++
		if runStart < 0 {
			runStart = p
		}
	}
	if err := flush(n); err != nil {
		return nil, 0, fmt.Errorf("write image: %w", err)
	}
	if err := f.Truncate(int64(len(mem))); err != nil {
		return nil, 0, fmt.Errorf("size image: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, 0, fmt.Errorf("sync image: %w", err)
	}
	return crcs, data, nil
}

// buffered turns direct I/O on f off.
func buffered(f *os.File) error {
	fd := f.Fd()
	fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(fd, unix.F_SETFL, fl&^unix.O_DIRECT)
	}
	if err != nil {
		return fmt.Errorf("image file flags: %w", err)
	}
	return nil
}

var zeroPage = make([]byte, PageSize)

func isZero(b []byte) bool { return bytes.Equal(b, zeroPage[:len(b)]) }

// Limits of the decoders, so that a damaged or hostile file can never make
// them allocate or index by a size it claims before that size is checked.
const (
	// MaxWasmPages is wasm32's largest memory, 4 GiB in 64 KiB pages: a
	// snapshot claiming more is damaged.
	MaxWasmPages = 1 << 16
	// MaxPages is the largest image in 4 KiB pages.
	MaxPages = MaxWasmPages * engine.WasmPageSize / PageSize
	// MaxMetaBytes bounds meta.json (a Go guest's globals take a few KiB).
	MaxMetaBytes = 1 << 20
	// MaxWSMetaBytes bounds ws.json: the worst case, every other page of a
	// 4 GiB image a run of its own, is about 2^19 runs of ~30 bytes.
	MaxWSMetaBytes = 16 << 20
	// maxGlobals bounds the globals a meta.json may list.
	maxGlobals = 1 << 16
)

// DecodeMeta parses and validates meta.json: format version, memory size
// within wasm32's 4 GiB, image size consistent with it. Any failure is
// errdefs.ErrCorrupt.
func DecodeMeta(b []byte) (Meta, error) {
	var meta Meta
	if len(b) > MaxMetaBytes {
		return Meta{}, fmt.Errorf("meta: %d bytes, at most %d: %w", len(b), MaxMetaBytes, errdefs.ErrCorrupt)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return Meta{}, fmt.Errorf("meta: %v: %w", err, errdefs.ErrCorrupt)
	}
	switch {
	case meta.Version != FormatVersion:
		return Meta{}, fmt.Errorf("format version %d, want %d: %w", meta.Version, FormatVersion, errdefs.ErrCorrupt)
	case meta.State.Pages > MaxWasmPages:
		return Meta{}, fmt.Errorf("memory of %d wasm pages, at most %d: %w", meta.State.Pages, MaxWasmPages, errdefs.ErrCorrupt)
	case meta.ImageSize != int64(meta.State.Pages)*engine.WasmPageSize:
		return Meta{}, fmt.Errorf("image size %d does not match %d wasm pages: %w", meta.ImageSize, meta.State.Pages, errdefs.ErrCorrupt)
	case meta.DataPages < 0 || meta.DataPages > meta.ImageSize/PageSize:
		return Meta{}, fmt.Errorf("%d data pages in an image of %d: %w", meta.DataPages, meta.ImageSize/PageSize, errdefs.ErrCorrupt)
	case len(meta.State.Globals) > maxGlobals:
		return Meta{}, fmt.Errorf("%d globals: %w", len(meta.State.Globals), errdefs.ErrCorrupt)
	case meta.Request < 0:
		return Meta{}, fmt.Errorf("request number %d: %w", meta.Request, errdefs.ErrCorrupt)
	}
	return meta, nil
}

// CRCTableSize is the size pages.crc must have for meta's image.
func CRCTableSize(meta Meta) int64 { return 4 * (meta.ImageSize / PageSize) }

// DecodeCRCs parses pages.crc for the image meta describes (DecodeMeta
// validated): one little-endian CRC-32C per page, the table's own CRC-32C
// equal to meta.CRCSum. Any failure is errdefs.ErrCorrupt.
func DecodeCRCs(meta Meta, b []byte) (CRCTable, error) {
	if int64(len(b)) != CRCTableSize(meta) || crc32.Checksum(b, castagnoli) != meta.CRCSum {
		return nil, fmt.Errorf("page checksum table damaged (%d bytes, want %d): %w", len(b), CRCTableSize(meta), errdefs.ErrCorrupt)
	}
	return ParseCRCTable(b)
}

// New returns the snapshot described by meta (DecodeMeta validated) and its
// checksum table (the bytes of pages.crc, checked by DecodeCRCs), with its
// files in dir. Open uses it for a local directory; a restore from the
// snapshot store uses it for an image the store materialised, so that image
// is checked page by page like a local one.
func New(dir string, meta Meta, crcTable []byte) (*Snapshot, error) {
	crcs, err := DecodeCRCs(meta, crcTable)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	return &Snapshot{Dir: dir, Meta: meta, crcs: crcs}, nil
}

// Open reads and validates the snapshot at dir: its metadata, checksum table
// and image size. A missing, truncated or corrupt snapshot fails with
// errdefs.ErrNotFound or errdefs.ErrCorrupt. No file is read into memory
// before its size has been checked against its limit or the size the
// metadata implies.
func Open(dir string) (*Snapshot, error) {
	mj, err := atomicfile.ReadFile(filepath.Join(dir, MetaFile), MaxMetaBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("snapshot %s: %w", dir, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	meta, err := DecodeMeta(mj)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	fi, err := os.Stat(filepath.Join(dir, ImageFile))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: image: %v: %w", dir, err, errdefs.ErrCorrupt)
	}
	if fi.Size() != meta.ImageSize {
		return nil, fmt.Errorf("snapshot %s: image is %d bytes, want %d (truncated?): %w", dir, fi.Size(), meta.ImageSize, errdefs.ErrCorrupt)
	}
	cb, err := atomicfile.ReadFile(filepath.Join(dir, CRCFile), CRCTableSize(meta))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: page checksum table: %v: %w", dir, err, errdefs.ErrCorrupt)
	}
	return New(dir, meta, cb)
}

// Pages is the number of 4 KiB pages in the image.
func (s *Snapshot) Pages() int { return len(s.crcs) }

// VerifyPages checks the checksums of the pages of mem, which holds the
// image's pages starting at page first.
func (s *Snapshot) VerifyPages(first int, mem []byte) error {
	for i := 0; i*PageSize < len(mem); i++ {
		p := first + i
		if p < 0 || p >= len(s.crcs) {
			return fmt.Errorf("page %d is past the image: %w", p, errdefs.ErrCorrupt)
		}
		if !s.crcs.Check(int64(p), mem[i*PageSize:(i+1)*PageSize]) {
			return fmt.Errorf("snapshot %s: page %d fails its checksum: %w", s.Dir, p, errdefs.ErrCorrupt)
		}
	}
	return nil
}

// ReadPages reads the image's pages of runs into mem, each at its own
// offset, and checks them against their checksums; a page past the image
// is an error. Holes read as zeros.
func (s *Snapshot) ReadPages(mem []byte, runs []Run) error {
	f, err := os.Open(s.Path(ImageFile))
	if err != nil {
		return fmt.Errorf("open image: %w", err)
	}
	defer f.Close()
	for _, r := range runs {
		if r.Start < 0 || r.Count < 0 || r.Start > len(s.crcs) || r.Count > len(s.crcs)-r.Start ||
			(r.Start+r.Count)*PageSize > len(mem) {
			return fmt.Errorf("pages %d+%d are past the image or the memory: %w", r.Start, r.Count, errdefs.ErrCorrupt)
		}
		lo, hi := r.Start*PageSize, (r.Start+r.Count)*PageSize
		if _, err := f.ReadAt(mem[lo:hi], int64(lo)); err != nil {
			return fmt.Errorf("read image pages %d-%d: %w: %v", r.Start, r.Start+r.Count-1, errdefs.ErrCorrupt, err)
		}
		if err := s.VerifyPages(r.Start, mem[lo:hi]); err != nil {
			return err
		}
	}
	return nil
}

// VerifyPage checks one page's checksum.
func (s *Snapshot) VerifyPage(page int, data []byte) bool {
	return s.crcs.Check(int64(page), data)
}

// DropCache evicts the snapshot's files from the page cache
// (posix_fadvise DONTNEED), so the next restore reads from disk.
func (s *Snapshot) DropCache() error {
	for _, name := range []string{ImageFile, WSImageFile} {
		if err := DropFileCache(s.Path(name)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// DropFileCache writes back and evicts one file's pages from the page cache.
func DropFileCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_ = f.Sync()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", path, err)
	}
	return nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, FileMode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
