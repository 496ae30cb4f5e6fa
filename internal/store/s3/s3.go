// Package s3 is a store.Backend on any S3-compatible object store, through
// minio-go v7: the remote, shared tier of a tiered store. Several workers
// pointing at one bucket share snapshots.
//
// The client is kept generic (path-style addressing, no vendor APIs) so that
// MinIO, Ceph RGW, Garage or AWS S3 all work.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store"
)

// Config says where the bucket is. It is validated by New.
type Config struct {
	// Endpoint is host:port, e.g. "127.0.0.1:9000".
	Endpoint string
	// Secure selects https.
	Secure    bool
	AccessKey string
	SecretKey string
	Region    string
	Bucket    string
	// Prefix is prepended to every object name, to share a bucket.
	Prefix string
	// MaxRetries bounds minio-go's own retries of a failed request. The
	// default, 2, is deliberately low: an unreachable store must surface
	// quickly as errdefs.ErrUnavailable so the tiered store can serve from
	// local tiers and queue writes, rather than stall on backoff.
	MaxRetries int
	// DialTimeout bounds connection setup (default 2s) for the same reason.
	DialTimeout time.Duration
	// MaxObjectSize bounds the size of an object Get will read (default
	// 64 MiB), so a damaged or hostile store cannot exhaust memory.
	MaxObjectSize int64
}

// Backend is a bucket (and prefix) seen as a store.Backend.
type Backend struct {
	cfg    Config
	client *minio.Client
}

var _ store.Backend = (*Backend)(nil)

// New returns a Backend for cfg. It does no network I/O, so a worker can
// start while the store is down; call EnsureBucket to create the bucket.
func New(cfg Config) (*Backend, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, fmt.Errorf("s3: endpoint and bucket are required: %w", errdefs.ErrInvalid)
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 2
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.MaxObjectSize <= 0 {
		cfg.MaxObjectSize = 64 << 20
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.MaxIdleConnsPerHost = 32 // prefetch fetches chunks in parallel
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.Secure,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    tr,
		MaxRetries:   cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w: %w", errdefs.ErrInvalid, err)
	}
	return &Backend{cfg: cfg, client: client}, nil
}

// EnsureBucket creates the bucket if it does not exist.
func (b *Backend) EnsureBucket(ctx context.Context) error {
	ok, err := b.client.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		return b.wrap("bucket "+b.cfg.Bucket, err)
	}
	if ok {
		return nil
	}
	err = b.client.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.cfg.Region})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		return nil // another worker won the race
	}
	if err != nil {
		return b.wrap("creating bucket "+b.cfg.Bucket, err)
	}
	return nil
}

// wrap maps S3 and transport errors onto the errdefs categories.
func (b *Backend) wrap(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3: %s: %w", what, err)
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NotFound" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket":
		return fmt.Errorf("s3: %s: %w", what, errdefs.ErrNotFound)
	case resp.Code == "AccessDenied" || resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch":
		return fmt.Errorf("s3: %s: %w: %w", what, errdefs.ErrUnauthorized, err)
	case resp.Code == "" || resp.StatusCode >= 500 || resp.Code == "SlowDown":
		// No S3 error document: the request never got an answer
		// (connection refused, reset, timeout) or the server is failing.
		return fmt.Errorf("s3: %s: %w: %w", what, errdefs.ErrUnavailable, err)
	}
	return fmt.Errorf("s3: %s: %w", what, err)
}

func (b *Backend) key(name string) string { return b.cfg.Prefix + name }

// Get implements store.Backend with one GET request. The response says the
// object's size, so it is read into one buffer of that size rather than a
// growing one (for a 4 MiB chunk that saves several copies).
func (b *Backend) Get(ctx context.Context, name string) ([]byte, error) {
	body, info, _, err := minio.Core{Client: b.client}.GetObject(ctx, b.cfg.Bucket, b.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, b.wrap(name, err)
	}
	defer body.Close()
	if info.Size > b.cfg.MaxObjectSize {
		return nil, fmt.Errorf("s3: %s: larger than %d bytes: %w", name, b.cfg.MaxObjectSize, errdefs.ErrTooLarge)
	}
	if info.Size < 0 { // no length given: read to the end, bounded
		data, err := io.ReadAll(io.LimitReader(body, b.cfg.MaxObjectSize+1))
		if err != nil {
			return nil, b.wrap(name, err)
		}
		if int64(len(data)) > b.cfg.MaxObjectSize {
			return nil, fmt.Errorf("s3: %s: larger than %d bytes: %w", name, b.cfg.MaxObjectSize, errdefs.ErrTooLarge)
		}
		return data, nil
	}
	data := make([]byte, info.Size)
	if _, err := io.ReadFull(body, data); err != nil {
		return nil, b.wrap(name, err)
	}
	return data, nil
}

// Put implements store.Backend with one PUT request (objects are far below
// the multipart threshold).
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	_, err := b.client.PutObject(ctx, b.cfg.Bucket, b.key(name), bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	if err != nil {
		return b.wrap(name, err)
	}
	return nil
}

// Delete implements store.Backend; S3 deletes of missing keys succeed.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := b.client.RemoveObject(ctx, b.cfg.Bucket, b.key(name), minio.RemoveObjectOptions{}); err != nil {
		return b.wrap(name, err)
	}
	return nil
}

// Stat implements store.Backend.
func (b *Backend) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	oi, err := b.client.StatObject(ctx, b.cfg.Bucket, b.key(name), minio.StatObjectOptions{})
	if err != nil {
		return store.ObjectInfo{}, b.wrap(name, err)
	}
	return store.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List implements store.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine if fn fails
	for oi := range b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: b.key(prefix), Recursive: true}) {
		if oi.Err != nil {
			return b.wrap("list "+prefix, oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, b.cfg.Prefix)
		if err := fn(store.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return nil
}
