package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// KeyValue opens the KV bucket cfg names, creating it with the node's
// replica count if it does not exist. A cluster still electing its
// JetStream leader answers "temporarily unavailable" for a while, so it
// retries until ctx ends; the error is then errdefs.ErrUnavailable.
func (n *Node) KeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = n.Replicas
	}
	return retry(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return openOrCreate(ctx, cfg.Bucket, n.JS.KeyValue, func(ctx context.Context) (jetstream.KeyValue, error) {
			return n.JS.CreateKeyValue(ctx, cfg)
		})
	})
}

// ObjectStore opens the object store bucket cfg names, creating it as
// KeyValue does.
func (n *Node) ObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = n.Replicas
	}
	return retry(ctx, "object store "+cfg.Bucket, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return openOrCreate(ctx, cfg.Bucket, n.JS.ObjectStore, func(ctx context.Context) (jetstream.ObjectStore, error) {
			return n.JS.CreateObjectStore(ctx, cfg)
		})
	})
}

// openOrCreate opens bucket, creating it if it does not exist, and
// opening it again if another node created it meanwhile.
func openOrCreate[T any](ctx context.Context, bucket string, open func(context.Context, string) (T, error), create func(context.Context) (T, error)) (T, error) {
	v, err := open(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		v, err = create(ctx)
		if errors.Is(err, jetstream.ErrBucketExists) {
			v, err = open(ctx, bucket)
		}
	}
	return v, err
}

// attemptTimeout bounds one attempt to open a bucket.
const attemptTimeout = 2 * time.Second

// retry calls open until it succeeds or ctx ends, with a short pause
// between attempts.
func retry[T any](ctx context.Context, what string, open func(context.Context) (T, error)) (T, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		v, err := open(actx)
		cancel()
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("open %s: %v: %w", what, err, errdefs.ErrUnavailable)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// LoopbackAddrs returns n loopback HOST:PORT addresses whose ports were
// free a moment ago: route addresses for a cluster of processes on one
// machine (tests), where every node must know the others' before any
// starts.
func LoopbackAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		out = append(out, l.Addr().String())
		defer l.Close()
	}
	return out, nil
}

// Follow calls apply with every entry w delivers (nil once: the end of
// the entries that existed when the watch began) until ctx ends, the
// watcher closes or apply returns false; then it stops the watcher.
func Follow(ctx context.Context, w jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry) bool) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok || !apply(e) {
				return
			}
		}
	}
}
