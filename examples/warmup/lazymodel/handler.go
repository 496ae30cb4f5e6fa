package main

import (
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// Model geometry: 65536 items with 128-dimensional unit embeddings, 32 MiB
// of float32 in 64 shards of 1024 items (512 KiB). Generating and
// normalising a shard is the expensive "model load"; a shard is loaded the
// first time a request needs it, as loaders of large models map or fetch
// only the parts in use.
const (
	items      = 1 << 16
	dims       = 128
	shards     = 64
	shardItems = items / shards
	candidates = 512
)

// model is a table of item embeddings for similarity search, loaded shard
// by shard.
type model struct {
	shard [shards][]float32
}

// loadShard generates shard s from a seed of its own, so every instance
// loads the same model whatever order its shards are needed in.
func loadShard(s int) []float32 {
	rng := rand.New(rand.NewPCG(77, 88+uint64(s)))
	emb := make([]float32, shardItems*dims)
	for i := range shardItems {
		v := emb[i*dims : (i+1)*dims]
		var norm float64
		for j := range v {
			x := float64(int32(rng.Uint32())) / (1 << 31) // uniform in [-1, 1)
			v[j] = float32(x)
			norm += x * x
		}
		s := float32(1 / math.Sqrt(norm))
		for j := range v {
			v[j] *= s
		}
	}
	return emb
}

// embedding returns item's embedding, loading its shard if needed.
func (m *model) embedding(item int) []float32 {
	s := item / shardItems
	if m.shard[s] == nil {
		m.shard[s] = loadShard(s)
	}
	i := item % shardItems
	return m.shard[s][i*dims : (i+1)*dims]
}

// neighbour is an item and its cosine similarity to the query.
type neighbour struct {
	Item       int     `json:"item"`
	Similarity float64 `json:"similarity"`
}

// similar returns the k items most similar to item among candidates from
// its own shard (related items are stored together), a cheap scan once the
// shard is loaded.
func (m *model) similar(item, k int) []neighbour {
	q := m.embedding(item)
	base, off := item-item%shardItems, item%shardItems
	ns := make([]neighbour, 0, candidates)
	for c := 1; c <= candidates; c++ {
		j := base + (off+c*97)%shardItems // 97 is odd: 512 distinct candidates
		v := m.embedding(j)
		var s float32
		for d := range q {
			s += q[d] * v[d]
		}
		ns = append(ns, neighbour{Item: j, Similarity: math.Round(float64(s)*1e6) / 1e6})
	}
	sort.SliceStable(ns, func(a, b int) bool { return ns[a].Similarity > ns[b].Similarity })
	return ns[:k]
}

// pick returns the item request n asks about: its shard drawn from a Zipf
// distribution seeded by n (item popularity is skewed, so popular shards
// are loaded early and rare ones keep trickling in), the item within it
// uniformly.
func pick(n int) int {
	rng := rand.New(rand.NewPCG(uint64(n), 0x1a2))
	s := int(rand.NewZipf(rng, 1.1, 2, shards-1).Uint64())
	return s*shardItems + rng.IntN(shardItems)
}

// result is lazymodel's JSON answer.
type result struct {
	Item    int         `json:"item"`
	Similar []neighbour `json:"similar"`
}

// Handler recommends the ?k= (default 5) items most similar to ?item=.
// Without ?item= the item is pick(n), n being the instance's request count
// (1, 2, ...), so the answer depends on how many requests the instance has
// served; send ?item= for reproducible answers. The model is loaded shard
// by shard on first use, not at init: a snapshot taken after init lacks it
// and every restore pays the loads again, one taken after request n
// carries the shards the first n requests needed.
func Handler() http.Handler {
	var (
		mu    sync.Mutex
		count int
		m     model
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		count++
		item, err := fn.Int(r, "item", pick(count), 0, items-1)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		k, err := fn.Int(r, "k", 5, 1, candidates)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		fn.JSON(w, result{Item: item, Similar: m.similar(item, k)})
	})
}
