package main

import (
	"math"
	"net/http"
	"slices"

	"github.com/thaw-run/thaw/examples/internal/fn"
	"github.com/thaw-run/thaw/examples/suite/internal/graph"
)

// ranked is a node and its rank.
type ranked struct {
	Node int     `json:"node"`
	Rank float64 `json:"rank"`
}

// result is graph_pagerank's JSON answer.
type result struct {
	Nodes      int      `json:"nodes"`
	Iterations int      `json:"iterations"`
	Top        []ranked `json:"top"`
}

// Handler runs ?iterations= (default 5) PageRank iterations with damping
// ?damping= (default 0.85) over the graph built at init and returns the
// ?top= (default 5) nodes.
func Handler() http.Handler {
	return handler(graph.Default())
}

func handler(g *graph.Graph) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		iters, err := fn.Int(r, "iterations", 5, 1, 100)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		damping, err := fn.Float(r, "damping", 0.85, 0, 1)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		top, err := fn.Int(r, "top", 5, 1, 100)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		rank := g.PageRank(iters, damping)
		res := result{Nodes: g.Nodes(), Iterations: iters}
		for _, v := range topK(rank, top) {
			res.Top = append(res.Top, ranked{Node: v, Rank: math.Round(rank[v]*1e12) / 1e12})
		}
		fn.JSON(w, res)
	})
}

// topK returns the indices of the k largest ranks, highest first, ties by
// lower index. One pass with a small sorted buffer: sorting all 100k nodes
// would cost more than the PageRank iterations themselves under wasm.
func topK(rank []float64, k int) []int {
	before := func(a, b int) bool { return rank[a] > rank[b] || rank[a] == rank[b] && a < b }
	top := make([]int, 0, k+1)
	for v := range rank {
		if len(top) == k && !before(v, top[k-1]) {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, v, func(e, t int) int {
			if before(e, t) {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, i, v)
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}
