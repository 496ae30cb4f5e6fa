package store

import (
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/thaw-run/thaw/internal/lru"
)

// chunkCache is a bytes-bounded LRU of decrypted chunks, keyed by id, with
// single-flight loading: concurrent readers of one missing chunk (a fault
// and a prefetch, say) share one fetch and one decryption.
type chunkCache struct {
	disabled bool // capacity <= 0 (Config.CacheBytes < 0): nothing is kept
	loads    singleflight.Group

	mu     sync.Mutex
	chunks *lru.Cache[ChunkID, []byte]
}

func newChunkCache(capacity int64) *chunkCache {
	size := func(b []byte) int64 { return int64(len(b)) }
	return &chunkCache{disabled: capacity <= 0, chunks: lru.New[ChunkID](max(capacity, 0), size, nil)}
}

// get returns the cached chunk, or loads it with load (once for all
// concurrent callers) and caches the result. hit says whether the chunk was
// already cached or being loaded by another caller.
func (c *chunkCache) get(id ChunkID, load func() ([]byte, error)) (plain []byte, hit bool, err error) {
	c.mu.Lock()
	plain, ok := c.chunks.Get(id)
	c.mu.Unlock()
	if ok {
		return plain, true, nil
	}
	loaded := false // only the caller whose function runs sets it
	v, err, _ := c.loads.Do(string(id[:]), func() (any, error) {
		// Cached by a load that ended between our miss and this call.
		c.mu.Lock()
		plain, ok := c.chunks.Get(id)
		c.mu.Unlock()
		if ok {
			return plain, nil
		}
		loaded = true
		plain, err := load()
		if err == nil && !c.disabled {
			c.mu.Lock()
			c.chunks.Add(id, plain) // a chunk over the capacity is not kept
			c.mu.Unlock()
		}
		return plain, err
	})
	plain, _ = v.([]byte)
	return plain, !loaded, err
}

func (c *chunkCache) contains(id ChunkID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.chunks.Peek(id)
	return ok
}
