// Package graph holds the graph and the algorithms of the SeBS graph
// functions (graph_bfs, graph_pagerank, graph_mst). SeBS builds a
// Barabási–Albert graph with igraph on every request; thaw's ports build it
// once at init, so the graph is part of the snapshot and each request runs
// only the algorithm.
package graph

import (
	"cmp"
	"math/rand/v2"
	"slices"
)

// Graph is an undirected graph in compressed sparse row form: the
// neighbours of v are Adj[Off[v]:Off[v+1]], with edge weights at the same
// indices in Weight. Every edge is stored in both directions.
type Graph struct {
	Off    []int32
	Adj    []int32
	Weight []uint32
}

// Edge is an undirected edge with a weight.
type Edge struct {
	U, V int32
	W    uint32
}

// Nodes returns the number of nodes.
func (g *Graph) Nodes() int { return len(g.Off) - 1 }

// Edges returns the number of undirected edges.
func (g *Graph) Edges() int { return len(g.Adj) / 2 }

// FromEdges builds a graph with n nodes from an edge list.
func FromEdges(n int, edges []Edge) *Graph {
	g := &Graph{Off: make([]int32, n+1), Adj: make([]int32, 2*len(edges)), Weight: make([]uint32, 2*len(edges))}
	for _, e := range edges {
		g.Off[e.U+1]++
		g.Off[e.V+1]++
	}
	for i := range n {
		g.Off[i+1] += g.Off[i]
	}
	next := slices.Clone(g.Off[:n])
	for _, e := range edges {
		g.Adj[next[e.U]], g.Weight[next[e.U]] = e.V, e.W
		next[e.U]++
		g.Adj[next[e.V]], g.Weight[next[e.V]] = e.U, e.W
		next[e.V]++
	}
	return g
}

// BarabasiAlbert returns a preferential-attachment graph of n nodes: each
// new node links to m distinct earlier nodes chosen in proportion to their
// degree, as igraph's Barabasi generator does. Edge weights are uniform in
// [1, 1000]. The graph is connected, and the same seed gives the same graph.
func BarabasiAlbert(n, m int, seed uint64) *Graph {
	rng := rand.New(rand.NewPCG(seed, 0xba))
	var edges []Edge
	// ends lists every edge endpoint: sampling it uniformly samples nodes
	// in proportion to their degree.
	ends := make([]int32, 0, 2*n*m)
	chosen := make([]int32, 0, m)
	for v := 1; v < n; v++ {
		chosen = chosen[:0]
		for len(chosen) < min(m, v) {
			var u int32
			if len(ends) == 0 || rng.IntN(10) == 0 {
				u = int32(rng.IntN(v)) // a little uniform choice keeps young nodes reachable
			} else {
				u = ends[rng.IntN(len(ends))]
			}
			if !slices.Contains(chosen, u) {
				chosen = append(chosen, u)
			}
		}
		for _, u := range chosen {
			edges = append(edges, Edge{U: u, V: int32(v), W: uint32(1 + rng.IntN(1000))})
			ends = append(ends, u, int32(v))
		}
	}
	return FromEdges(n, edges)
}

// BFS returns the hop distance from src to every node, -1 where unreachable.
func (g *Graph) BFS(src int) []int32 {
	dist := make([]int32, g.Nodes())
	for i := range dist {
		dist[i] = -1
	}
	dist[src] = 0
	queue := make([]int32, 1, g.Nodes())
	queue[0] = int32(src)
	for head := 0; head < len(queue); head++ {
		v := queue[head]
		for _, u := range g.Adj[g.Off[v]:g.Off[v+1]] {
			if dist[u] < 0 {
				dist[u] = dist[v] + 1
				queue = append(queue, u)
			}
		}
	}
	return dist
}

// PageRank runs iters power iterations with damping factor d and returns
// each node's rank; the ranks sum to 1. A node without neighbours spreads
// its rank over every node.
func (g *Graph) PageRank(iters int, d float64) []float64 {
	n := g.Nodes()
	rank := make([]float64, n)
	next := make([]float64, n)
	for i := range rank {
		rank[i] = 1 / float64(n)
	}
	for range iters {
		dangling := 0.0
		for v := range n {
			deg := g.Off[v+1] - g.Off[v]
			if deg == 0 {
				dangling += rank[v]
				continue
			}
			share := rank[v] / float64(deg)
			for _, u := range g.Adj[g.Off[v]:g.Off[v+1]] {
				next[u] += share
			}
		}
		base := (1-d)/float64(n) + d*dangling/float64(n)
		for v := range next {
			rank[v] = base + d*next[v]
			next[v] = 0
		}
	}
	return rank
}

// MSTPrim returns the minimum spanning forest's total weight and edge
// count, grown from every unvisited node in turn with a binary heap.
func (g *Graph) MSTPrim() (weight uint64, edges int) {
	n := g.Nodes()
	seen := make([]bool, n)
	h := &edgeHeap{}
	for root := range n {
		if seen[root] {
			continue
		}
		seen[root] = true
		g.push(h, root, seen)
		for len(*h) > 0 {
			e := h.pop()
			if seen[e.V] {
				continue
			}
			seen[e.V] = true
			weight += uint64(e.W)
			edges++
			g.push(h, int(e.V), seen)
		}
	}
	return weight, edges
}

// push adds v's edges to unseen nodes to h.
func (g *Graph) push(h *edgeHeap, v int, seen []bool) {
	for i := g.Off[v]; i < g.Off[v+1]; i++ {
		if u := g.Adj[i]; !seen[u] {
			h.push(Edge{U: int32(v), V: u, W: g.Weight[i]})
		}
	}
}

// MSTKruskal computes the same as MSTPrim by sorting edges and joining
// components with a union-find; the tests cross-check the two. Small
// integer weights (the generator's are 1-1000) are sorted by counting,
// in linear time.
func (g *Graph) MSTKruskal() (weight uint64, edges int) {
	var list []Edge
	for v := range g.Nodes() {
		for i := g.Off[v]; i < g.Off[v+1]; i++ {
			if u := g.Adj[i]; int32(v) < u {
				list = append(list, Edge{U: int32(v), V: u, W: g.Weight[i]})
			}
		}
	}
	list = sortByWeight(list)
	parent := make([]int32, g.Nodes())
	for i := range parent {
		parent[i] = int32(i)
	}
	find := func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for _, e := range list {
		if a, b := find(e.U), find(e.V); a != b {
			parent[a] = b
			weight += uint64(e.W)
			edges++
		}
	}
	return weight, edges
}

// sortByWeight returns edges in ascending weight order, stably. Weights
// below 1<<16 are counted into buckets; larger ones fall back to a
// comparison sort.
func sortByWeight(edges []Edge) []Edge {
	maxW := uint32(0)
	for _, e := range edges {
		maxW = max(maxW, e.W)
	}
	if maxW >= 1<<16 {
		slices.SortStableFunc(edges, func(a, b Edge) int { return cmp.Compare(a.W, b.W) })
		return edges
	}
	start := make([]int, maxW+2)
	for _, e := range edges {
		start[e.W+1]++
	}
	for w := 1; w < len(start); w++ {
		start[w] += start[w-1]
	}
	out := make([]Edge, len(edges))
	for _, e := range edges {
		out[start[e.W]] = e
		start[e.W]++
	}
	return out
}

// edgeHeap is a binary min-heap of edges by weight. It is written out
// rather than built on container/heap, whose interface boxes every edge:
// Prim pushes a million of them per request.
type edgeHeap []Edge

func (h *edgeHeap) push(e Edge) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p].W <= a[i].W {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *edgeHeap) pop() Edge {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < n && a[l].W < a[small].W {
			small = l
		}
		if r := l + 1; r < n && a[r].W < a[small].W {
			small = r
		}
		if small == i {
			break
		}
		a[i], a[small] = a[small], a[i]
		i = small
	}
	*h = a
	return top
}

// The graph every SeBS graph function serves: 100k nodes, each attached to
// 5 earlier ones, 500k edges, about 8 MB in CSR form.
const (
	DefaultNodes = 100_000
	DefaultM     = 5
	DefaultSeed  = 1
)

// Default builds the functions' graph.
func Default() *Graph { return BarabasiAlbert(DefaultNodes, DefaultM, DefaultSeed) }
