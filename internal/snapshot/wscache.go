package snapshot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/lru"
)

// Decoded working sets, cached per ws.json file.
//
// Every reap and bulk restore reads its snapshot's ws.json, and parsing it
// cost a small function's restore about 0.1 ms of its start (docs/restore.md,
// "Fixed cost of a restore"), for a file that changes only when the working
// set is extended. So the decoded working set is kept, keyed by the file's
// identity: its directory, device, inode, size and modification time. A
// working set is replaced by renaming new files into place (commitWorkingSet),
// which gives ws.json a new inode, so a cached entry is never taken for a
// newer file; a restore then pays one stat of ws.json instead of an open, a
// read and a parse. The lookup runs under the working set's read lock, like
// the read it replaces, so ws.json and ws.img are still read as one.

// wsCacheBytes bounds the decoded working sets kept, by the size of their
// ws.json (runs cost about as much decoded as encoded).
const wsCacheBytes = 16 << 20

// wsKey identifies one ws.json file.
type wsKey struct {
	dir        string
	dev, ino   uint64
	size, mtim int64
}

var (
	wsCacheMu sync.Mutex
	wsCache   = lru.New[wsKey, *WorkingSet](wsCacheBytes, func(ws *WorkingSet) int64 { return int64(len(ws.encoded)) + 64 }, nil)
)

// keyOf is fi's cache key, false if fi has no inode to tell files apart.
func keyOf(dir string, fi fs.FileInfo) (wsKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return wsKey{}, false
	}
	return wsKey{dir: dir, dev: uint64(st.Dev), ino: st.Ino, size: fi.Size(), mtim: fi.ModTime().UnixNano()}, true
}

// readWorkingSet returns ws.json decoded, from the cache when the file is
// the one last decoded; the caller holds the working set's lock. The
// result is the caller's: its Runs are not shared with the cache in a way
// an append could change.
func (s *Snapshot) readWorkingSet() (*WorkingSet, error) {
	path := s.Path(WSMetaFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("working set: %w", errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("working set %s: %w", s.Dir, err)
	}
	if key, ok := keyOf(s.Dir, fi); ok {
		wsCacheMu.Lock()
		ws, hit := wsCache.Get(key)
		wsCacheMu.Unlock()
		if hit {
			return ws.clone(), nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("working set: %w", errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("working set %s: %w", s.Dir, err)
	}
	defer f.Close()
	// The key is that of the file read, not of the one stat found.
	fi, err = f.Stat()
	if err != nil {
		return nil, fmt.Errorf("working set %s: %w", s.Dir, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > MaxWSMetaBytes {
		return nil, fmt.Errorf("working set %s: ws.json: %d bytes (%s), at most %d: %w", s.Dir, fi.Size(), fi.Mode().Type(), MaxWSMetaBytes, errdefs.ErrCorrupt)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxWSMetaBytes+1))
	if err != nil {
		return nil, fmt.Errorf("working set %s: %w", s.Dir, err)
	}
	ws, err := DecodeWorkingSet(b, s.Pages())
	if err != nil {
		return nil, fmt.Errorf("working set %s: %w", s.Dir, err)
	}
	ws.encoded = b
	ws.Runs = slices.Clip(ws.Runs)
	if key, ok := keyOf(s.Dir, fi); ok && int64(len(b)) == fi.Size() {
		ws.key = key
		wsCacheMu.Lock()
		wsCache.Add(key, ws)
		wsCacheMu.Unlock()
	}
	return ws.clone(), nil
}

// clone is a copy of w for one caller: the decoded slices are shared, but
// clipped, so an append to the copy's Runs copies them first; no caller
// writes into them.
func (w *WorkingSet) clone() *WorkingSet {
	c := *w
	c.img, c.direct = nil, false
	return &c
}
