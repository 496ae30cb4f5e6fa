package store

import (
	"container/list"
	"sync"
)

// chunkCache is a bytes-bounded LRU of decrypted chunks, keyed by id, with
// single-flight loading: concurrent readers of one missing chunk (a fault
// and a prefetch, say) share one fetch and one decryption.
type chunkCache struct {
	capacity int64

	mu       sync.Mutex
	used     int64
	lru      *list.List // values are *cached
	entries  map[ChunkID]*list.Element
	inflight map[ChunkID]*call
}

type cached struct {
	id    ChunkID
	plain []byte
}

type call struct {
	done  chan struct{}
	plain []byte
	err   error
}

func newChunkCache(capacity int64) *chunkCache {
	return &chunkCache{capacity: capacity, lru: list.New(), entries: map[ChunkID]*list.Element{}, inflight: map[ChunkID]*call{}}
}

// get returns the cached chunk, or loads it with load (once for all
// concurrent callers) and caches the result. hit says whether the chunk was
// already cached or being loaded by another caller.
func (c *chunkCache) get(id ChunkID, load func() ([]byte, error)) (plain []byte, hit bool, err error) {
	c.mu.Lock()
	if el, ok := c.entries[id]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*cached).plain, true, nil
	}
	if cl, ok := c.inflight[id]; ok {
		c.mu.Unlock()
		<-cl.done
		return cl.plain, true, cl.err
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[id] = cl
	c.mu.Unlock()

	cl.plain, cl.err = load()

	c.mu.Lock()
	delete(c.inflight, id)
	if cl.err == nil {
		c.addLocked(id, cl.plain)
	}
	c.mu.Unlock()
	close(cl.done)
	return cl.plain, false, cl.err
}

func (c *chunkCache) contains(id ChunkID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[id]
	return ok
}

func (c *chunkCache) addLocked(id ChunkID, plain []byte) {
	size := int64(len(plain))
	if size > c.capacity {
		return
	}
	if _, ok := c.entries[id]; ok {
		return
	}
	for c.used+size > c.capacity {
		e := c.lru.Remove(c.lru.Back()).(*cached)
		delete(c.entries, e.id)
		c.used -= int64(len(e.plain))
	}
	c.entries[id] = c.lru.PushFront(&cached{id: id, plain: plain})
	c.used += size
}
