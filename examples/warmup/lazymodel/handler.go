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
// of float32. Generating and normalising them is the expensive "model
// load" the first request pays.
const (
	items      = 1 << 16
	dims       = 128
	candidates = 512
)

// model is a table of item embeddings for similarity search.
type model struct {
	emb []float32
}

// load generates the model from a fixed seed, so every instance loads the
// same one.
func load() *model {
	rng := rand.New(rand.NewPCG(77, 88))
	m := &model{emb: make([]float32, items*dims)}
	for i := range items {
		v := m.emb[i*dims : (i+1)*dims]
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
	return m
}

// neighbour is an item and its cosine similarity to the query.
type neighbour struct {
	Item       int     `json:"item"`
	Similarity float64 `json:"similarity"`
}

// similar returns the k items most similar to item among the candidates
// that follow it, a cheap scan once the model is loaded.
func (m *model) similar(item, k int) []neighbour {
	q := m.emb[item*dims : (item+1)*dims]
	ns := make([]neighbour, 0, candidates)
	for c := 1; c <= candidates; c++ {
		j := (item + c*97) % items
		v := m.emb[j*dims : (j+1)*dims]
		var s float32
		for d := range q {
			s += q[d] * v[d]
		}
		ns = append(ns, neighbour{Item: j, Similarity: math.Round(float64(s)*1e6) / 1e6})
	}
	sort.SliceStable(ns, func(a, b int) bool { return ns[a].Similarity > ns[b].Similarity })
	return ns[:k]
}

// result is lazymodel's JSON answer.
type result struct {
	Item    int         `json:"item"`
	Similar []neighbour `json:"similar"`
}

// Handler recommends the ?k= (default 5) items most similar to ?item=
// (default 0). The model is loaded on the first request, not at init: a
// snapshot taken after init lacks it and every restore pays the load again,
// while one taken after the first request carries 32 MiB more memory but
// serves at once.
func Handler() http.Handler {
	var (
		once sync.Once
		m    *model
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		item, err := fn.Int(r, "item", 0, 0, items-1)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		k, err := fn.Int(r, "k", 5, 1, candidates)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		once.Do(func() { m = load() })
		fn.JSON(w, result{Item: item, Similar: m.similar(item, k)})
	})
}
