package main

import (
	"cmp"
	"math"
	"net/http"
	"slices"

	"github.com/thaw-run/thaw/examples/suite/internal/fn"
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
		idx := make([]int, len(rank))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(rank[b], rank[a]) })
		res := result{Nodes: g.Nodes(), Iterations: iters}
		for _, v := range idx[:min(top, len(idx))] {
			res.Top = append(res.Top, ranked{Node: v, Rank: math.Round(rank[v]*1e12) / 1e12})
		}
		fn.JSON(w, res)
	})
}
