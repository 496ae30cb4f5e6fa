package s3_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/storetest"
)

// The decorator Open returns for an endpoint that did not answer passes
// the suite over a bucket that does not exist yet: its first operation
// creates the bucket, as when the object store comes back.
func TestLateBucketConformance(t *testing.T) {
	cfg := testConfig(t)
	storetest.Run(t, func(t *testing.T) store.Backend {
		c := cfg
		c.Bucket, c.Prefix = "thaw-late-"+randomName(), ""
		b, err := s3.New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx := context.Background()
			_ = b.List(ctx, "", func(fi store.ObjectInfo) error { return b.Delete(ctx, fi.Name) })
			if err := b.RemoveBucket(ctx); err != nil {
				t.Errorf("removing the test's bucket: %v", err)
			}
		})
		return s3.NewLateBucket(b)
	})
}

// Open creates the bucket; an endpoint that does not answer does not fail
// it, and every operation is then ErrUnavailable; other errors (a wrong
// secret) fail it.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	down, err := s3.Open(ctx, s3.Config{Endpoint: "127.0.0.1:1", Bucket: "b", DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open with the endpoint down: %v", err)
	}
	if _, err := down.Get(ctx, "chunks/t/x"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Get while down: %v, want ErrUnavailable", err)
	}
	if err := down.Put(ctx, "chunks/t/x", []byte("x")); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Put while down: %v, want ErrUnavailable", err)
	}

	cfg := testConfig(t)
	bad := cfg
	bad.SecretKey = "wrong-secret-key"
	if _, err := s3.Open(ctx, bad); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("Open with a wrong secret: %v, want ErrUnauthorized", err)
	}
	cfg.Bucket, cfg.Prefix = "thaw-open-"+randomName(), ""
	b, err := s3.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bb, ok := b.(*s3.Backend)
	if !ok {
		t.Fatalf("Open with the endpoint up returned a %T, want the bucket itself", b)
	}
	if err := bb.RemoveBucket(ctx); err != nil {
		t.Fatalf("the bucket Open created: %v", err)
	}
}
