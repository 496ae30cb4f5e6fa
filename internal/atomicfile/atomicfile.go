// Package atomicfile replaces files atomically: the content is written to a
// temporary file in the same file system, synced, and renamed over the
// target, whose directory is then synced. A reader, or a crash, sees the old
// content or the new, never a mix, and a completed write survives a crash.
// ReadFile reads such a file back whole, bounded: a file that is too large
// for what it should hold is refused unread.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// ErrDirNotSynced is Commit's error when the new content is in place (the
// rename is done and visible) but its directory could not be synced, so
// the replacement may not survive a power loss. Callers for which the
// rename is the commit point tell it apart from a failed write.
var ErrDirNotSynced = errors.New("renamed into place, directory not synced")

// File is a temporary file that Commit renames over its target. Write it
// through the embedded *os.File (Write, WriteAt, Truncate); Abort, deferred,
// removes it unless it was committed.
type File struct {
	*os.File
	// NoSync skips both fsyncs (the file's before the rename, the
	// directory's after it): for caches whose content is checked or
	// refetched and which may lose recent writes in a crash. The rename
	// stays atomic.
	NoSync bool
	// AfterRename, if set, runs between the rename and the directory sync:
	// a crash point for tests.
	AfterRename func()

	done, synced bool
}

// Create makes a temporary file in dir (which must be on the target's file
// system), named by pattern as os.CreateTemp does, so that concurrent
// writers never share one; a pattern lets start-up clean-up find the
// leftovers of a crash. The file has mode perm (os.CreateTemp's 0600 when
// perm is 0).
func Create(dir, pattern string, perm fs.FileMode) (*File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if perm != 0 && perm != 0o600 {
		if err := f.Chmod(perm); err != nil {
			f.Close()
			_ = os.Remove(f.Name())
			return nil, err
		}
	}
	return &File{File: f}, nil
}

// Commit syncs and closes the file, renames it to path and syncs path's
// directory. On an error before the rename the temporary file is removed
// and path is unchanged; an error wrapping ErrDirNotSynced means path
// holds the new content.
func (f *File) Commit(path string) error {
	if f.done {
		return fmt.Errorf("atomicfile: %s: already committed or aborted", f.Name())
	}
	f.done = true
	tmp := f.Name()
	if !f.NoSync && !f.synced {
		if err := f.File.Sync(); err != nil {
			f.File.Close()
			_ = os.Remove(tmp)
			return err
		}
	}
	if err := f.File.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if f.AfterRename != nil {
		f.AfterRename()
	}
	if f.NoSync {
		return nil
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w: %v", ErrDirNotSynced, err)
	}
	return nil
}

// Sync syncs the file now, for a caller that must see a full disk
// (ENOSPC) before it commits; Commit then does not sync it again, so
// nothing may be written after it.
func (f *File) Sync() error {
	if err := f.File.Sync(); err != nil {
		return err
	}
	f.synced = true
	return nil
}

// Abort closes and removes the temporary file; after Commit it does
// nothing, so it can be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	_ = os.Remove(f.Name())
}

// WriteFile replaces path with data atomically and durably, through a
// temporary file ".<name>.tmp-*" beside it with mode perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(filepath.Dir(path), TempPattern(path), perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit(path)
}

// ReadFile reads the file at path whole if it is a regular file of at most
// limit bytes; a larger file, or one that is not regular (a directory, a
// FIFO, a device), is errdefs.ErrCorrupt and is not read. The size is taken
// from the open file and the read stops at limit+1 bytes, so a file that
// grows meanwhile cannot make it allocate more. A missing file's error
// wraps fs.ErrNotExist.
//
// Every file thaw reads back from its own directories has a known bound
// (a snapshot's metadata, a store object, a function record), so a
// damaged or planted file costs an error, never the memory it claims.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes (%s), at most %d: %w", path, fi.Size(), fi.Mode().Type(), limit, errdefs.ErrCorrupt)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: grew past %d bytes: %w", path, limit, errdefs.ErrCorrupt)
	}
	return b, nil
}

// TempPattern is the pattern WriteFile names path's temporary files by:
// hidden, beside it, and containing ".tmp-".
func TempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// SyncDir makes the entries of dir (a rename, a creation, a removal)
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
