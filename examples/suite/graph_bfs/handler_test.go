package main

import (
	"net/http"
	"slices"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
	"github.com/thaw-run/thaw/examples/suite/internal/graph"
)

func TestHandlerTiny(t *testing.T) {
	// 0-1-2-3 and an isolated 4.
	h := handler(graph.FromEdges(5, []graph.Edge{{U: 0, V: 1, W: 1}, {U: 1, V: 2, W: 1}, {U: 2, V: 3, W: 1}}))
	for _, tc := range []struct {
		target  string
		levels  []int
		reached int
		dist    int
	}{
		{"/?target=3", []int{1, 1, 1, 1}, 4, 3},
		{"/?source=1&target=4", []int{1, 2, 1}, 4, -1},
		{"/?source=4&target=4", []int{1}, 1, 0},
	} {
		t.Run(tc.target, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, http.MethodGet, tc.target, nil, &got)
			if !slices.Equal(got.Levels, tc.levels) || got.Reached != tc.reached || got.Target == nil || *got.Target != tc.dist {
				t.Errorf("got %+v", got)
			}
		})
	}
	fntest.CheckBad(t, h, http.MethodGet, "/?source=5", "/?source=-1", "/?target=99", "/?source=x")
}

func TestHandler(t *testing.T) {
	h := Handler()
	var got result
	fntest.DoJSON(t, h, http.MethodGet, "/", nil, &got)
	if got.Nodes != graph.DefaultNodes || got.Reached != got.Nodes || got.MaxDepth < 2 {
		t.Errorf("got %+v", got)
	}
	fntest.CheckDeterministic(t, h, "/", "/?source=777&target=5")
}
