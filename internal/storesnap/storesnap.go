// Package storesnap bridges snapshot directories (internal/snapshot) and the
// chunk store (internal/store): Publish puts a snapshot's files into a
// store as one store snapshot, OpenSnapshot reads a snapshot back from the
// store alone, Materialise writes a memory image back to a local file, and
// Pull a whole snapshot back to a local snapshot directory. Which store,
// and how it is stacked, is internal/store/stack's business.
package storesnap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/snapshot"
	"github.com/thaw-run/thaw/internal/store"
)

// ID is the store snapshot id of a function's snapshot: one name segment,
// "<function>.<snapshot id>".
func ID(function, snapshotID string) string { return function + "." + snapshotID }

// Published lists the files of a snapshot directory Publish stores, in
// manifest order. ws.trace is left out: restores do not need it.
var Published = []string{snapshot.MetaFile, snapshot.CRCFile, snapshot.WSMetaFile, snapshot.WSImageFile, snapshot.ImageFile}

// WSChunkSize is the chunk size of a published working set (ws.img). A
// REAP or bulk restore reads ws.img whole before the guest runs, so its
// chunks are larger than the memory image's: a 24 MiB working set takes 7
// requests instead of 49, all in flight at once with the default
// concurrency, and each chunk is still installed as soon as it arrives.
const WSChunkSize = 4 << 20

// Publish puts the snapshot directory snap into st as store snapshot id.
// Every file starts on a chunk boundary, so the working set (ws.img, already
// its pages back to back) spans ceil(size/WSChunkSize) chunks and a REAP or
// bulk restore fetches it with that many parallel requests. The working set
// is published only if ws.img matches ws.json's checksum; ws.json and
// ws.img are read as one (snapshot.OpenWorkingSet), so a concurrent
// re-recording does not mix with them. A snapshot without one is published
// without it.
func Publish(ctx context.Context, st *store.Store, id string, snap *snapshot.Snapshot) (*store.PutResult, error) {
	ws, err := snap.OpenWorkingSet()
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		ws = nil
	case err != nil:
		return nil, fmt.Errorf("publish %s: %w", snap.Dir, err)
	default:
		defer ws.Close()
		data := make([]byte, ws.Bytes())
		if _, err := ws.Image().ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("publish %s: working set: %w", snap.Dir, err)
		}
		if err := snap.CheckWorkingSetData(ws, data); err != nil {
			return nil, fmt.Errorf("publish %s: %w", snap.Dir, err)
		}
	}
	var files []store.FileSource
	for _, name := range Published {
		var fs store.FileSource
		switch {
		case (name == snapshot.WSMetaFile || name == snapshot.WSImageFile) && ws == nil:
			continue
		case name == snapshot.WSMetaFile:
			fs = store.FileSource{Name: name, Size: int64(len(ws.Encoded())), R: bytes.NewReader(ws.Encoded())}
		case name == snapshot.WSImageFile:
			fs = store.FileSource{Name: name, Size: ws.Bytes(), R: ws.Image(), ChunkSize: WSChunkSize}
		default:
			f, err := os.Open(snap.Path(name))
			if err != nil {
				return nil, fmt.Errorf("publish %s: %w", snap.Dir, err)
			}
			defer f.Close()
			if fs, err = store.FileSourceOf(name, f); err != nil {
				return nil, fmt.Errorf("publish %s: %w", snap.Dir, err)
			}
		}
		files = append(files, fs)
	}
	res, err := st.Put(ctx, id, files)
	if err != nil {
		return nil, fmt.Errorf("publish %s as %s: %w", snap.Dir, id, err)
	}
	return res, nil
}

// Snapshot is a snapshot opened from the store alone: its metadata and
// working-set description, read and authenticated, and random access to
// its images.
type Snapshot struct {
	ID    string
	Meta  snapshot.Meta
	Store *store.Store
	Snap  *store.Snapshot
	// Image is memory.img.
	Image *store.File
	// WS and WSImage are the working set and ws.img; nil if none was
	// published.
	WS      *snapshot.WorkingSet
	WSImage *store.File

	checkedMu sync.Mutex
	checked   *snapshot.Snapshot
}

// Checked returns the snapshot with its page checksum table (pages.crc,
// read from the store once and authenticated, and checked against the
// metadata's checksum of it), for verifying the pages of an image
// materialised on local disk, which the store no longer vouches for once
// written. dir is the directory reported as the snapshot's (the
// materialised image's).
func (s *Snapshot) Checked(ctx context.Context, dir string) (*snapshot.Snapshot, error) {
	s.checkedMu.Lock()
	defer s.checkedMu.Unlock()
	if s.checked != nil {
		return s.checked, nil
	}
	b, err := readWhole(ctx, s.Snap, snapshot.CRCFile, snapshot.CRCTableSize(s.Meta))
	if err != nil {
		return nil, err
	}
	snap, err := snapshot.New(dir, s.Meta, b)
	if err != nil {
		return nil, fmt.Errorf("store snapshot %s: %w", s.ID, err)
	}
	s.checked = snap
	return snap, nil
}

// OpenSnapshot opens store snapshot id: the manifest, then meta.json and
// ws.json in parallel. pages.crc is not read: every chunk is authenticated
// by the store, which is a stronger check than the page checksums.
// Errors: errdefs.ErrNotFound (no such snapshot), ErrCorrupt (tampered or
// inconsistent), ErrUnauthorized (another key), ErrUnavailable.
func OpenSnapshot(ctx context.Context, st *store.Store, id string) (*Snapshot, error) {
	return openSnapshot(ctx, st, id, st.Open)
}

// OpenLatestSnapshot is OpenSnapshot with the manifest read from the origin
// store (store.Store.OpenLatest): what a snapshot published again holds
// now, such as a working set recorded since a cache copied it.
func OpenLatestSnapshot(ctx context.Context, st *store.Store, id string) (*Snapshot, error) {
	return openSnapshot(ctx, st, id, st.OpenLatest)
}

func openSnapshot(ctx context.Context, st *store.Store, id string, open func(context.Context, string) (*store.Snapshot, error)) (*Snapshot, error) {
	sn, err := open(ctx, id)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{ID: id, Store: st, Snap: sn}
	if s.Image, err = sn.File(snapshot.ImageFile); err != nil {
		return nil, fmt.Errorf("store snapshot %s: %v: %w", id, err, errdefs.ErrCorrupt)
	}
	var (
		wg           sync.WaitGroup
		metaB, wsB   []byte
		metaE, wsErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		metaB, metaE = readWhole(ctx, sn, snapshot.MetaFile, snapshot.MaxMetaBytes)
	}()
	if _, err := sn.File(snapshot.WSMetaFile); err == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wsB, wsErr = readWhole(ctx, sn, snapshot.WSMetaFile, snapshot.MaxWSMetaBytes)
		}()
	}
	wg.Wait()
	if metaE != nil {
		return nil, metaE
	}
	if wsErr != nil {
		return nil, wsErr
	}
	if s.Meta, err = snapshot.DecodeMeta(metaB); err != nil {
		return nil, fmt.Errorf("store snapshot %s: %w", id, err)
	}
	if s.Image.Size() != s.Meta.ImageSize {
		return nil, fmt.Errorf("store snapshot %s: image is %d bytes, meta says %d for %d wasm pages: %w",
			id, s.Image.Size(), s.Meta.ImageSize, s.Meta.State.Pages, errdefs.ErrCorrupt)
	}
	if wsB != nil {
		ws, err := snapshot.DecodeWorkingSet(wsB, int(s.Meta.ImageSize/snapshot.PageSize))
		if err != nil {
			return nil, fmt.Errorf("store snapshot %s: %w", id, err)
		}
		if s.WSImage, err = sn.File(snapshot.WSImageFile); err != nil || s.WSImage.Size() != ws.Bytes() {
			return nil, fmt.Errorf("store snapshot %s: working set does not match ws.img: %w", id, errdefs.ErrCorrupt)
		}
		s.WS = ws
	}
	return s, nil
}

// readWhole reads a small file of sn.
func readWhole(ctx context.Context, sn *store.Snapshot, name string, limit int64) ([]byte, error) {
	f, err := sn.File(name)
	if err != nil {
		return nil, fmt.Errorf("store snapshot %s: %v: %w", sn.ID(), err, errdefs.ErrCorrupt)
	}
	if f.Size() > limit {
		return nil, fmt.Errorf("store snapshot %s: %s is %d bytes: %w", sn.ID(), name, f.Size(), errdefs.ErrCorrupt)
	}
	b := make([]byte, f.Size())
	if _, err := f.ReadAtContext(ctx, b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// Materialise writes the snapshot's memory image into dir as a sparse file
// (only non-zero chunks are written) and returns its path; mmap restores
// map it, since the store has no file to map. A file already there of the
// right size, a regular file only its owner can read or write, is reused:
// it is written under a temporary name and renamed into place only once
// complete, so an existing one is whole. Its contents are not trusted: the
// file is plaintext on local disk, as a local snapshot directory is, and an
// mmap restore of it checks the pages the guest maps against the
// snapshot's checksum table (Checked) as it does for a local image.
func (s *Snapshot) Materialise(ctx context.Context, dir string, conc int) (path string, written int64, err error) {
	path = filepath.Join(dir, s.ID+".img")
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 == 0 && fi.Size() == s.Meta.ImageSize {
		return path, 0, nil
	}
	if err := os.MkdirAll(dir, snapshot.DirMode); err != nil {
		return "", 0, fmt.Errorf("materialise %s: %w", s.ID, err)
	}
	f, err := atomicfile.Create(dir, s.ID+".*.tmp", 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("materialise %s: %w", s.ID, err)
	}
	defer f.Abort() // no-op after Commit
	// Not synced: a cache of the store's chunks, checked page by page on
	// restore and rewritten when lost.
	f.NoSync = true
	if written, err = s.writeImage(ctx, f.File, conc); err != nil {
		return "", written, fmt.Errorf("materialise %s: %w", s.ID, err)
	}
	if err := f.Commit(path); err != nil {
		return "", written, fmt.Errorf("materialise %s: %w", s.ID, err)
	}
	return path, written, nil
}

// writeImage writes the memory image into f, sized to it, leaving the
// chunks the store holds as zero (holes) unwritten, with conc chunks in
// flight; it returns the bytes written.
func (s *Snapshot) writeImage(ctx context.Context, f *os.File, conc int) (int64, error) {
	if err := f.Truncate(s.Meta.ImageSize); err != nil {
		return 0, err
	}
	var (
		mu      sync.Mutex
		written int64
	)
	err := s.Snap.ForEachChunk(ctx, snapshot.ImageFile, conc, func(ctx context.Context, off, size int64) error {
		buf := make([]byte, size)
		if _, err := s.Image.ReadAtContext(ctx, buf, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
		mu.Lock()
		written += size
		mu.Unlock()
		return nil
	})
	return written, err
}

// pullPiece bounds the memory a streamed copy of a file holds at once.
const pullPiece = 4 << 20

// Pull writes the snapshot as a local snapshot directory at dir, which
// must not exist: meta.json, pages.crc, memory.img (sparse, conc chunks in
// flight) and, if one was published, the working set (ws.json, ws.img).
// The files are written and synced in a temporary directory beside dir
// (dir + ".pull") that is renamed into place once whole, so dir is either
// absent or complete. The copy is then opened as any local snapshot
// (snapshot.Open checks meta.json against pages.crc; a restore checks the
// pages it maps against pages.crc). It returns the local snapshot and the
// bytes written.
func (s *Snapshot) Pull(ctx context.Context, dir string, conc int) (*snapshot.Snapshot, int64, error) {
	fail := func(err error) (*snapshot.Snapshot, int64, error) {
		return nil, 0, fmt.Errorf("pull %s into %s: %w", s.ID, dir, err)
	}
	if _, err := os.Lstat(dir); err == nil {
		return fail(fmt.Errorf("already there: %w", errdefs.ErrConflict))
	}
	tmp := dir + ".pull"
	_ = os.RemoveAll(tmp) // a crashed pull's
	if err := os.MkdirAll(tmp, snapshot.DirMode); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	var written int64
	write := func(name string, fill func(f *os.File) (int64, error)) error {
		f, err := os.OpenFile(filepath.Join(tmp, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, snapshot.FileMode)
		if err != nil {
			return err
		}
		n, err := fill(f)
		written += n
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	files := []string{snapshot.MetaFile, snapshot.CRCFile}
	if s.WS != nil {
		files = append(files, snapshot.WSMetaFile, snapshot.WSImageFile)
	}
	for _, name := range files {
		sf, err := s.Snap.File(name)
		if err != nil {
			return fail(fmt.Errorf("%v: %w", err, errdefs.ErrCorrupt))
		}
		if err := write(name, func(f *os.File) (int64, error) { return copyOut(ctx, sf, f) }); err != nil {
			return fail(err)
		}
	}
	if err := write(snapshot.ImageFile, func(f *os.File) (int64, error) { return s.writeImage(ctx, f, conc) }); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fail(err)
	}
	_ = atomicfile.SyncDir(filepath.Dir(dir)) // best effort: the copy is whole and checked on use
	snap, err := snapshot.Open(dir)
	if err == nil && snap.Meta.ID != s.Meta.ID {
		err = fmt.Errorf("the copy is snapshot %s: %w", snap.Meta.ID, errdefs.ErrCorrupt)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return fail(err)
	}
	return snap, written, nil
}

// copyOut copies store file sf into f, pullPiece bytes at a time.
func copyOut(ctx context.Context, sf *store.File, f *os.File) (int64, error) {
	buf := make([]byte, min(sf.Size(), pullPiece))
	var off int64
	for off < sf.Size() {
		n, err := sf.ReadAtContext(ctx, buf[:min(int64(len(buf)), sf.Size()-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return off, err
		}
		if n == 0 {
			return off, fmt.Errorf("%s: short read at %d of %d: %w", f.Name(), off, sf.Size(), errdefs.ErrCorrupt)
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return off, err
		}
		off += int64(n)
	}
	return off, nil
}
