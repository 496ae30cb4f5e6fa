package store

import "context"

// holdersKey is the context key of WithHolders.
type holdersKey struct{}

// WithHolders returns ctx carrying nodes: the cluster's workers likely to
// hold the chunks read under ctx in their caches, best first. A chunk's
// name says nothing of the snapshots that use it, so whoever reads a
// snapshot says who may have it; the cluster's chunk tier
// (internal/store/peer) asks them before the remote.
func WithHolders(ctx context.Context, nodes []string) context.Context {
	if len(nodes) == 0 {
		return ctx
	}
	return context.WithValue(ctx, holdersKey{}, nodes)
}

// Holders returns the nodes WithHolders attached to ctx (nil: none).
func Holders(ctx context.Context, _ string) []string {
	nodes, _ := ctx.Value(holdersKey{}).([]string)
	return nodes
}
