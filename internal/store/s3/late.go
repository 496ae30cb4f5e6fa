package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

// Open returns the bucket of cfg as the remote of a writing store: New,
// then EnsureBucket. If the endpoint is unreachable the bucket opens
// anyway, so that a worker starts and serves while the object store is
// down: reads are served by the local tiers, writes queue on local disk,
// and the check is retried on later use (the tiered uploader retries its
// queue every few seconds). Any other error (wrong credentials, an invalid
// bucket name) still fails, because waiting would not fix it.
func Open(ctx context.Context, cfg Config) (store.Backend, error) {
	b, err := New(cfg)
	if err != nil {
		return nil, err
	}
	err = b.EnsureBucket(ctx)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, errdefs.ErrUnavailable) {
		return nil, err
	}
	slog.Warn("store: object store unreachable at start; serving from local tiers and queueing uploads until it returns",
		"bucket", cfg.Bucket, "err", err)
	return &lateBucket{b: b}, nil
}

// lateBucket is a Backend whose bucket could not be checked when it was
// opened. Until the bucket has been checked, every operation checks it
// first and, while that fails with errdefs.ErrUnavailable, fails the same
// way, which the tiered backend answers from its caches and queue. A check
// costs what the operation itself would against a down endpoint (the
// client's dial timeout), and concurrent operations check in parallel
// rather than queue behind one another; a lost race to create the bucket
// is not an error (EnsureBucket).
type lateBucket struct {
	b     *Backend
	ready atomic.Bool
}

var _ store.Backend = (*lateBucket)(nil)

func (l *lateBucket) ensure(ctx context.Context) error {
	if l.ready.Load() {
		return nil
	}
	if err := l.b.EnsureBucket(ctx); err != nil {
		return fmt.Errorf("s3: bucket not ready: %w", err)
	}
	if !l.ready.Swap(true) {
		slog.Info("store: object store reachable; bucket ready", "bucket", l.b.cfg.Bucket)
	}
	return nil
}

func (l *lateBucket) Get(ctx context.Context, name string) ([]byte, error) {
	if err := l.ensure(ctx); err != nil {
		return nil, err
	}
	return l.b.Get(ctx, name)
}

func (l *lateBucket) Put(ctx context.Context, name string, data []byte) error {
	if err := l.ensure(ctx); err != nil {
		return err
	}
	return l.b.Put(ctx, name, data)
}

func (l *lateBucket) Delete(ctx context.Context, name string) error {
	if err := l.ensure(ctx); err != nil {
		return err
	}
	return l.b.Delete(ctx, name)
}

func (l *lateBucket) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := l.ensure(ctx); err != nil {
		return store.ObjectInfo{}, err
	}
	return l.b.Stat(ctx, name)
}

func (l *lateBucket) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	if err := l.ensure(ctx); err != nil {
		return err
	}
	return l.b.List(ctx, prefix, fn)
}
