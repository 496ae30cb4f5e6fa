package store

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestChunkCacheSingleFlight checks that concurrent readers of one missing
// chunk share one load, that only the loader reports a miss, and that the
// result is cached.
func TestChunkCacheSingleFlight(t *testing.T) {
	c := newChunkCache(1 << 20)
	var id ChunkID
	id[0] = 1
	var loads, misses atomic.Int32
	release := make(chan struct{})
	load := func() ([]byte, error) {
		loads.Add(1)
		<-release
		return []byte("plain"), nil
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			plain, hit, err := c.get(id, load)
			if err != nil || string(plain) != "plain" {
				t.Errorf("get = %q, %v", plain, err)
			}
			if !hit {
				misses.Add(1)
			}
		}()
	}
	for loads.Load() == 0 {
		runtime.Gosched() // until the first load starts; then let it finish
	}
	close(release)
	wg.Wait()
	if misses.Load() != 1 {
		t.Errorf("%d callers reported a miss, want 1 (the loader)", misses.Load())
	}
	if !c.contains(id) {
		t.Fatal("loaded chunk not cached")
	}
	before := loads.Load()
	if _, hit, _ := c.get(id, load); !hit || loads.Load() != before {
		t.Error("cached chunk loaded again")
	}
}

func TestChunkCacheBounds(t *testing.T) {
	c := newChunkCache(8)
	a, b, big := ChunkID{1}, ChunkID{2}, ChunkID{3}
	fail := errors.New("fetch failed")
	if _, _, err := c.get(a, func() ([]byte, error) { return nil, fail }); !errors.Is(err, fail) || c.contains(a) {
		t.Fatalf("failed load: err %v, cached %v", err, c.contains(a))
	}
	c.get(a, func() ([]byte, error) { return make([]byte, 5), nil })
	c.get(b, func() ([]byte, error) { return make([]byte, 5), nil }) // evicts a
	if c.contains(a) || !c.contains(b) {
		t.Fatal("least recently used chunk not evicted")
	}
	c.get(big, func() ([]byte, error) { return make([]byte, 9), nil })
	if c.contains(big) || !c.contains(b) {
		t.Fatal("a chunk over the capacity was kept, or flushed the cache")
	}
	off := newChunkCache(-1)
	off.get(a, func() ([]byte, error) { return []byte("x"), nil })
	if off.contains(a) {
		t.Fatal("a disabled cache kept a chunk")
	}
}
