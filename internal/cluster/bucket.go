package cluster

import (
	"context"
	"errors"
	"fmt"
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
		kv, err := n.JS.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = n.JS.CreateKeyValue(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				kv, err = n.JS.KeyValue(ctx, cfg.Bucket) // another node was first
			}
		}
		return kv, err
	})
}

// ObjectStore opens the object store bucket cfg names, creating it as
// KeyValue does.
func (n *Node) ObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = n.Replicas
	}
	return retry(ctx, "object store "+cfg.Bucket, func(ctx context.Context) (jetstream.ObjectStore, error) {
		os, err := n.JS.ObjectStore(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			os, err = n.JS.CreateObjectStore(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				os, err = n.JS.ObjectStore(ctx, cfg.Bucket)
			}
		}
		return os, err
	})
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
