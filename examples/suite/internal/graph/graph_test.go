package graph

import (
	"math"
	"slices"
	"testing"
)

// path4 is 0-1-2-3 plus an isolated node 4.
func path4() *Graph {
	return FromEdges(5, []Edge{{0, 1, 5}, {1, 2, 1}, {2, 3, 2}})
}

func TestBFS(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *Graph
		src  int
		want []int32
	}{
		{"path", path4(), 0, []int32{0, 1, 2, 3, -1}},
		{"middle", path4(), 2, []int32{2, 1, 0, 1, -1}},
		{"triangle+tail", FromEdges(4, []Edge{{0, 1, 1}, {1, 2, 1}, {2, 0, 1}, {2, 3, 1}}), 0, []int32{0, 1, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.g.BFS(tc.src); !slices.Equal(got, tc.want) {
				t.Errorf("BFS = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPageRank(t *testing.T) {
	// On a cycle every node is alike, so ranks stay uniform.
	cycle := FromEdges(4, []Edge{{0, 1, 1}, {1, 2, 1}, {2, 3, 1}, {3, 0, 1}})
	for _, r := range cycle.PageRank(30, 0.85) {
		if math.Abs(r-0.25) > 1e-12 {
			t.Fatalf("cycle ranks %v, want uniform", cycle.PageRank(30, 0.85))
		}
	}
	// A star's centre outranks its leaves, and ranks sum to 1 even with a
	// dangling node.
	star := FromEdges(5, []Edge{{0, 1, 1}, {0, 2, 1}, {0, 3, 1}})
	r := star.PageRank(50, 0.85)
	sum := 0.0
	for _, v := range r {
		sum += v
	}
	if math.Abs(sum-1) > 1e-9 || r[0] <= r[1] || r[1] != r[2] {
		t.Errorf("star ranks %v (sum %v)", r, sum)
	}
}

func TestMST(t *testing.T) {
	// Square with a diagonal: the MST takes weights 1, 2, 3.
	sq := FromEdges(4, []Edge{{0, 1, 1}, {1, 2, 2}, {2, 3, 3}, {3, 0, 4}, {0, 2, 5}})
	for _, tc := range []struct {
		name  string
		g     *Graph
		w     uint64
		edges int
	}{
		{"square", sq, 6, 3},
		{"forest", path4(), 8, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w, e := tc.g.MSTPrim(); w != tc.w || e != tc.edges {
				t.Errorf("Prim = %d, %d; want %d, %d", w, e, tc.w, tc.edges)
			}
			if w, e := tc.g.MSTKruskal(); w != tc.w || e != tc.edges {
				t.Errorf("Kruskal = %d, %d; want %d, %d", w, e, tc.w, tc.edges)
			}
		})
	}
}

func TestBarabasiAlbert(t *testing.T) {
	g := BarabasiAlbert(2000, 3, 1)
	if g.Nodes() != 2000 {
		t.Fatalf("%d nodes", g.Nodes())
	}
	for _, d := range g.BFS(0) {
		if d < 0 {
			t.Fatal("graph is not connected")
		}
	}
	pw, pe := g.MSTPrim()
	kw, ke := g.MSTKruskal()
	if pe != 1999 || pw != kw || pe != ke {
		t.Errorf("Prim %d/%d, Kruskal %d/%d, want 1999 edges and equal weights", pw, pe, kw, ke)
	}
	h := BarabasiAlbert(2000, 3, 1)
	if !slices.Equal(g.Adj, h.Adj) || !slices.Equal(g.Weight, h.Weight) {
		t.Error("same seed gave different graphs")
	}
	// Preferential attachment makes hubs: the top degree far exceeds m.
	maxDeg := int32(0)
	for v := range g.Nodes() {
		maxDeg = max(maxDeg, g.Off[v+1]-g.Off[v])
	}
	if maxDeg < 30 {
		t.Errorf("max degree %d: no hubs", maxDeg)
	}
}

func TestSortByWeight(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Edge
	}{
		{"small", []Edge{{0, 1, 5}, {1, 2, 1}, {2, 3, 5}, {3, 4, 0}, {4, 5, 2}}},
		{"large", []Edge{{0, 1, 1 << 20}, {1, 2, 7}, {2, 3, 1 << 20}, {3, 4, 3}}},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := slices.Clone(tc.in)
			slices.SortStableFunc(want, func(a, b Edge) int { return int(a.W) - int(b.W) })
			if got := sortByWeight(slices.Clone(tc.in)); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func BenchmarkMST(b *testing.B) {
	g := Default()
	b.Run("prim", func(b *testing.B) {
		for b.Loop() {
			g.MSTPrim()
		}
	})
	b.Run("kruskal", func(b *testing.B) {
		for b.Loop() {
			g.MSTKruskal()
		}
	})
}
