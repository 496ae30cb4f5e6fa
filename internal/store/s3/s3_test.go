package s3_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/store/s3"
	"github.com/thaw-run/thaw/internal/store/storetest"
)

// testConfig returns the S3 server given by scripts/minio.sh's env file, or
// skips the test, saying why and how to run it.
func testConfig(t testing.TB) s3.Config {
	t.Helper()
	ep := os.Getenv("THAW_TEST_S3_ENDPOINT")
	if ep == "" {
		t.Skip("THAW_TEST_S3_ENDPOINT not set: run `scripts/minio.sh start && eval \"$(scripts/minio.sh env)\"` to test against a real S3 server")
	}
	return s3.Config{
		Endpoint:  ep,
		AccessKey: os.Getenv("THAW_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("THAW_TEST_S3_SECRET_KEY"),
		Region:    os.Getenv("THAW_TEST_S3_REGION"),
		Bucket:    "thaw-test",
		Prefix:    randomName(),
	}
}

func randomName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

func newBackend(t testing.TB, cfg s3.Config) *s3.Backend {
	t.Helper()
	b, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = b.List(ctx, "", func(fi store.ObjectInfo) error { return b.Delete(ctx, fi.Name) })
	})
	return b
}

func TestConformance(t *testing.T) {
	cfg := testConfig(t)
	storetest.Run(t, func(t *testing.T) store.Backend {
		c := cfg
		c.Prefix = randomName()
		return newBackend(t, c)
	})
}

func TestErrors(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  func(s3.Config) s3.Config
		want error
	}{
		{"unreachable", func(c s3.Config) s3.Config { c.Endpoint = "127.0.0.1:1"; return c }, errdefs.ErrUnavailable},
		{"bad secret", func(c s3.Config) s3.Config { c.SecretKey = "wrong-secret-key"; return c }, errdefs.ErrUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := s3.New(tc.cfg(cfg))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Get(ctx, "chunks/t/x"); !errors.Is(err, tc.want) {
				t.Errorf("Get: err = %v, want %v", err, tc.want)
			}
			if err := b.Put(ctx, "chunks/t/x", []byte("x")); !errors.Is(err, tc.want) {
				t.Errorf("Put: err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := s3.New(s3.Config{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("New(empty): err = %v, want ErrInvalid", err)
	}
}
