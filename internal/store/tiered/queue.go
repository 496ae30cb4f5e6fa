package tiered

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thaw-run/thaw/internal/atomicfile"
	"github.com/thaw-run/thaw/internal/store"
)

// queue is the durable upload queue: objects that could not be written to
// the remote store yet, one file each, named "<seq>~<flattened name>" so
// that a restart recovers them in their original order (a manifest after
// its chunks). Files are written atomically and fsynced: the queue may hold
// the only copy of a new snapshot.
type queue struct {
	dir string

	mu     sync.Mutex
	seq    uint64
	order  []*queued // in upload order
	byName map[string]*queued
}

type queued struct {
	seq     uint64
	name    string
	size    int64
	modTime time.Time
}

func openQueue(dir string) (*queue, error) {
	q := &queue{dir: dir, byName: map[string]*queued{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tiered: queue: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tiered: queue: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.Remove(filepath.Join(dir, e.Name())) // interrupted enqueue: never acknowledged
			continue
		}
		seqStr, flat, ok := strings.Cut(e.Name(), "~")
		seq, err := strconv.ParseUint(seqStr, 10, 64)
		name := strings.ReplaceAll(flat, "~", "/")
		if !ok || err != nil || store.ValidName(name) != nil {
			continue // not ours
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("tiered: queue: %w", err)
		}
		it := &queued{seq: seq, name: name, size: fi.Size(), modTime: fi.ModTime()}
		q.order = append(q.order, it)
		q.seq = max(q.seq, seq)
	}
	sort.Slice(q.order, func(i, j int) bool { return q.order[i].seq < q.order[j].seq })
	// A name queued twice (rewritten while the store was down): keep the
	// newest, drop the older files.
	kept := q.order[:0]
	for _, it := range q.order {
		if old := q.byName[it.name]; old != nil {
			os.Remove(q.path(old))
			for i, k := range kept {
				if k == old {
					kept = append(kept[:i], kept[i+1:]...)
					break
				}
			}
		}
		q.byName[it.name] = it
		kept = append(kept, it)
	}
	q.order = kept
	return q, nil
}

func (q *queue) path(it *queued) string {
	return filepath.Join(q.dir, fmt.Sprintf("%020d~%s", it.seq, strings.ReplaceAll(it.name, "/", "~")))
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// add durably queues data under name, replacing an older queued copy.
func (q *queue) add(name string, data []byte) error {
	f, err := atomicfile.Create(q.dir, ".tmp-", 0o600)
	if err != nil {
		return fmt.Errorf("tiered: queue: %w", err)
	}
	defer f.Abort() // no-op after Commit
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("tiered: queue %s: %w", name, err)
	}
	// Sync before taking the lock, so enqueues do not wait on each
	// other's fsync; Commit only renames and syncs the directory.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("tiered: queue %s: %w", name, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	it := &queued{seq: q.seq, name: name, size: int64(len(data)), modTime: time.Now()}
	if err := f.Commit(q.path(it)); err != nil {
		return fmt.Errorf("tiered: queue %s: %w", name, err)
	}
	if old := q.byName[name]; old != nil {
		q.removeLocked(old)
	}
	q.order = append(q.order, it)
	q.byName[name] = it
	return nil
}

func (q *queue) removeLocked(it *queued) {
	os.Remove(q.path(it))
	for i, o := range q.order {
		if o == it {
			q.order = append(q.order[:i], q.order[i+1:]...)
			break
		}
	}
	if q.byName[it.name] == it {
		delete(q.byName, it.name)
	}
}

// remove drops it once uploaded, unless it was replaced meanwhile.
func (q *queue) remove(it *queued) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.byName[it.name] == it {
		q.removeLocked(it)
	}
}

// removeName drops any queued copy of name.
func (q *queue) removeName(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it := q.byName[name]; it != nil {
		q.removeLocked(it)
	}
}

func (q *queue) front() *queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return nil
	}
	return q.order[0]
}

func (q *queue) lookup(name string) *queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.byName[name]
}

// read returns the data of a queued object, or fs.ErrNotExist if it was
// uploaded (and removed) meanwhile.
func (q *queue) read(it *queued) ([]byte, error) {
	b, err := atomicfile.ReadFile(q.path(it), store.MaxObjectSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fs.ErrNotExist
	}
	return b, err
}

func (q *queue) list(prefix string) []store.ObjectInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []store.ObjectInfo
	for _, it := range q.order {
		if strings.HasPrefix(it.name, prefix) {
			out = append(out, store.ObjectInfo{Name: it.name, Size: it.size, ModTime: it.modTime})
		}
	}
	return out
}
