package main

import (
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
	"github.com/thaw-run/thaw/examples/suite/internal/graph"
)

func TestHandlerTiny(t *testing.T) {
	h := handler(graph.FromEdges(4, []graph.Edge{{U: 0, V: 1, W: 1}, {U: 1, V: 2, W: 2}, {U: 2, V: 3, W: 3}, {U: 3, V: 0, W: 4}, {U: 0, V: 2, W: 5}}))
	for _, alg := range []string{"prim", "kruskal"} {
		var got result
		fntest.DoJSON(t, h, http.MethodGet, "/?algorithm="+alg, nil, &got)
		if got.Weight != 6 || got.Edges != 3 || got.Algorithm != alg {
			t.Errorf("%s: got %+v", alg, got)
		}
	}
	fntest.CheckBad(t, h, http.MethodGet, "/?algorithm=boruvka")
}

func TestHandler(t *testing.T) {
	h := Handler()
	var prim, kruskal result
	fntest.DoJSON(t, h, http.MethodGet, "/?algorithm=prim", nil, &prim)
	fntest.DoJSON(t, h, http.MethodGet, "/", nil, &kruskal)
	if kruskal.Algorithm != "kruskal" || prim.Edges != graph.DefaultNodes-1 || prim.Weight != kruskal.Weight || prim.Edges != kruskal.Edges {
		t.Errorf("prim %+v, kruskal %+v", prim, kruskal)
	}
	fntest.CheckDeterministic(t, h, "/")
}
