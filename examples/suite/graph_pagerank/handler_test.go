package main

import (
	"net/http"
	"slices"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
	"github.com/thaw-run/thaw/examples/suite/internal/graph"
)

func TestHandlerTiny(t *testing.T) {
	// A star centred on 2: the centre ranks first.
	h := handler(graph.FromEdges(4, []graph.Edge{{U: 2, V: 0, W: 1}, {U: 2, V: 1, W: 1}, {U: 2, V: 3, W: 1}}))
	var got result
	fntest.DoJSON(t, h, http.MethodGet, "/?iterations=50&top=2", nil, &got)
	if len(got.Top) != 2 || got.Top[0].Node != 2 || got.Top[0].Rank <= got.Top[1].Rank {
		t.Errorf("got %+v", got)
	}
	fntest.CheckBad(t, h, http.MethodGet, "/?iterations=0", "/?iterations=101", "/?damping=1.5", "/?damping=NaN", "/?top=0")
}

func TestHandler(t *testing.T) {
	h := Handler()
	var got result
	fntest.DoJSON(t, h, http.MethodGet, "/", nil, &got)
	if got.Nodes != graph.DefaultNodes || len(got.Top) != 5 || got.Top[0].Rank < 1.0/float64(got.Nodes) {
		t.Errorf("got %+v", got)
	}
	fntest.CheckDeterministic(t, h, "/", "/?iterations=3&damping=0.5")
}

func TestTopK(t *testing.T) {
	rank := []float64{0.1, 0.4, 0.2, 0.4, 0.05, 0.3}
	for _, tc := range []struct {
		k    int
		want []int
	}{{1, []int{1}}, {3, []int{1, 3, 5}}, {6, []int{1, 3, 5, 2, 0, 4}}, {10, []int{1, 3, 5, 2, 0, 4}}} {
		if got := topK(rank, tc.k); !slices.Equal(got, tc.want) {
			t.Errorf("topK(%d) = %v, want %v", tc.k, got, tc.want)
		}
	}
}
