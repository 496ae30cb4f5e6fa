package main

import (
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
	"github.com/thaw-run/thaw/examples/suite/internal/graph"
)

// result is graph_bfs's JSON answer.
type result struct {
	Nodes    int   `json:"nodes"`
	Edges    int   `json:"edges"`
	Source   int   `json:"source"`
	Reached  int   `json:"reached"`
	MaxDepth int   `json:"max_depth"`
	Levels   []int `json:"levels"` // nodes at each depth
	Target   *int  `json:"target_distance,omitempty"`
	DistSum  int64 `json:"distance_sum"`
}

// Handler runs a breadth-first search from ?source= (default 0) over the
// graph built at init and reports how many nodes lie at each depth, plus
// the distance to ?target= when given.
func Handler() http.Handler {
	return handler(graph.Default())
}

func handler(g *graph.Graph) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		src, err := fn.Int(r, "source", 0, 0, g.Nodes()-1)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		dist := g.BFS(src)
		res := result{Nodes: g.Nodes(), Edges: g.Edges(), Source: src}
		for _, d := range dist {
			if d < 0 {
				continue
			}
			res.Reached++
			res.DistSum += int64(d)
			for int(d) >= len(res.Levels) {
				res.Levels = append(res.Levels, 0)
			}
			res.Levels[d]++
		}
		res.MaxDepth = len(res.Levels) - 1
		if r.URL.Query().Has("target") {
			t, err := fn.Int(r, "target", 0, 0, g.Nodes()-1)
			if err != nil {
				fn.Error(w, http.StatusBadRequest, "%v", err)
				return
			}
			d := int(dist[t])
			res.Target = &d
		}
		fn.JSON(w, res)
	})
}
