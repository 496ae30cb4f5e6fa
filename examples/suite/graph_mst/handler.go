package main

import (
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
	"github.com/thaw-run/thaw/examples/suite/internal/graph"
)

// result is graph_mst's JSON answer.
type result struct {
	Nodes     int    `json:"nodes"`
	Algorithm string `json:"algorithm"`
	Edges     int    `json:"edges"`
	Weight    uint64 `json:"weight"`
}

// Handler computes the minimum spanning tree of the graph built at init
// with ?algorithm=kruskal (default: counting sort of the integer weights
// and a union-find) or prim (a binary heap, about 6x slower here) and
// returns its weight and edge count.
func Handler() http.Handler {
	return handler(graph.Default())
}

func handler(g *graph.Graph) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		res := result{Nodes: g.Nodes(), Algorithm: r.URL.Query().Get("algorithm")}
		switch res.Algorithm {
		case "prim":
			res.Weight, res.Edges = g.MSTPrim()
		case "", "kruskal":
			res.Algorithm = "kruskal"
			res.Weight, res.Edges = g.MSTKruskal()
		default:
			fn.Error(w, http.StatusBadRequest, "algorithm must be prim or kruskal, not %q", res.Algorithm)
			return
		}
		fn.JSON(w, res)
	})
}
