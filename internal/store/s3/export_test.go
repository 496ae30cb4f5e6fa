package s3

import (
	"context"

	"github.com/thaw-run/thaw/internal/store"
)

// NewLateBucket returns b behind the decorator Open returns when the
// endpoint does not answer, for the conformance suite.
func NewLateBucket(b *Backend) store.Backend { return &lateBucket{b: b} }

// RemoveBucket removes b's (empty) bucket, for tests that create their own.
func (b *Backend) RemoveBucket(ctx context.Context) error {
	return b.client.RemoveBucket(ctx, b.cfg.Bucket)
}
