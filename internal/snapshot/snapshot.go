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
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
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
	crcs []uint32
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
	if err := os.MkdirAll(tmp, 0o755); err != nil {
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
	crcBytes := encodeCRCs(crcs)
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
	syncDir(filepath.Dir(dir))
	return &Snapshot{Dir: dir, Meta: meta, crcs: crcs}, nil
}

// writeImage writes the non-zero pages of mem at their own offsets, leaving
// holes for zero pages, and returns every page's checksum.
func writeImage(path string, mem []byte) ([]uint32, int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("create image: %w", err)
	}
	defer f.Close()
	n := len(mem) / PageSize
	crcs := make([]uint32, n)
	var data int64
	zeroCRC := crc32.Checksum(make([]byte, PageSize), castagnoli)
	runStart := -1
	flush := func(end int) error {
		if runStart < 0 {
			return nil
		}
		_, err := f.WriteAt(mem[runStart*PageSize:end*PageSize], int64(runStart*PageSize))
		runStart = -1
		return err
	}
	for p := 0; p < n; p++ {
		page := mem[p*PageSize : (p+1)*PageSize]
		if isZero(page) {
			crcs[p] = zeroCRC
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

var zeroPage = make([]byte, PageSize)

func isZero(b []byte) bool { return bytes.Equal(b, zeroPage[:len(b)]) }

func encodeCRCs(crcs []uint32) []byte {
	b := make([]byte, 4*len(crcs))
	for i, c := range crcs {
		binary.LittleEndian.PutUint32(b[4*i:], c)
	}
	return b
}

// Open reads and validates the snapshot at dir: its metadata, checksum table
// and image size. A missing, truncated or corrupt snapshot fails with
// errdefs.ErrNotFound or errdefs.ErrCorrupt.
func Open(dir string) (*Snapshot, error) {
	mj, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("snapshot %s: %w", dir, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	var meta Meta
	if err := json.Unmarshal(mj, &meta); err != nil {
		return nil, fmt.Errorf("snapshot %s: meta: %v: %w", dir, err, errdefs.ErrCorrupt)
	}
	if meta.Version != FormatVersion {
		return nil, fmt.Errorf("snapshot %s: format version %d, want %d: %w", dir, meta.Version, FormatVersion, errdefs.ErrCorrupt)
	}
	if meta.ImageSize != int64(meta.State.Pages)*engine.WasmPageSize {
		return nil, fmt.Errorf("snapshot %s: image size %d does not match %d wasm pages: %w", dir, meta.ImageSize, meta.State.Pages, errdefs.ErrCorrupt)
	}
	fi, err := os.Stat(filepath.Join(dir, ImageFile))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: image: %v: %w", dir, err, errdefs.ErrCorrupt)
	}
	if fi.Size() != meta.ImageSize {
		return nil, fmt.Errorf("snapshot %s: image is %d bytes, want %d (truncated?): %w", dir, fi.Size(), meta.ImageSize, errdefs.ErrCorrupt)
	}
	cb, err := os.ReadFile(filepath.Join(dir, CRCFile))
	if err != nil || crc32.Checksum(cb, castagnoli) != meta.CRCSum || int64(len(cb)) != 4*meta.ImageSize/PageSize {
		return nil, fmt.Errorf("snapshot %s: page checksum table damaged: %w", dir, errdefs.ErrCorrupt)
	}
	crcs := make([]uint32, len(cb)/4)
	for i := range crcs {
		crcs[i] = binary.LittleEndian.Uint32(cb[4*i:])
	}
	return &Snapshot{Dir: dir, Meta: meta, crcs: crcs}, nil
}

// Pages is the number of 4 KiB pages in the image.
func (s *Snapshot) Pages() int { return len(s.crcs) }

// VerifyPages checks the checksums of the pages of mem, which holds the
// image's pages starting at page first.
func (s *Snapshot) VerifyPages(first int, mem []byte) error {
	for i := 0; i*PageSize < len(mem); i++ {
		p := first + i
		if p >= len(s.crcs) {
			return fmt.Errorf("page %d is past the image: %w", p, errdefs.ErrCorrupt)
		}
		if crc32.Checksum(mem[i*PageSize:(i+1)*PageSize], castagnoli) != s.crcs[p] {
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
		lo, hi := r.Start*PageSize, (r.Start+r.Count)*PageSize
		if r.Start < 0 || r.Start+r.Count > len(s.crcs) || hi > len(mem) {
			return fmt.Errorf("pages %d-%d are past the image or the memory: %w", r.Start, r.Start+r.Count-1, errdefs.ErrCorrupt)
		}
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
	return page < len(s.crcs) && crc32.Checksum(data, castagnoli) == s.crcs[page]
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
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
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

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
