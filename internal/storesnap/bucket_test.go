package storesnap

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store/s3"
)

// An S3 endpoint that does not answer does not fail Open: a snapshot
// published meanwhile is queued on local disk and read back from the local
// tiers, while anything only the remote could answer is ErrUnavailable.
// (The return of the endpoint is tested against MinIO in internal/worker.)
func TestOpenWithUnreachableS3(t *testing.T) {
	ctx := context.Background()
	cfg := Config{Tenant: "t1", Secret: secret(t), CacheDir: t.TempDir(), S3: &s3.Config{
		Endpoint: "127.0.0.1:1", AccessKey: "k", SecretKey: "s", Bucket: "b"}}
	h, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open with the endpoint down: %v", err)
	}
	defer h.Close()
	snap, mem := writeSnapshot(t)
	if _, err := Publish(ctx, h.Store, "f.s", snap); err != nil {
		t.Fatalf("publish while down: %v", err)
	}
	if h.Tiered.Pending() == 0 {
		t.Fatal("nothing queued")
	}
	sn, err := OpenSnapshot(ctx, h.Store, "f.s")
	if err != nil {
		t.Fatalf("open the queued snapshot: %v", err)
	}
	got := make([]byte, len(mem))
	if _, err := sn.Image.ReadAtContext(ctx, got, 0); err != nil || !bytes.Equal(got, mem) {
		t.Fatalf("read the queued image: %v", err)
	}
	if _, err := OpenSnapshot(ctx, h.Store, "f.other"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("snapshot only the remote could have: %v, want ErrUnavailable", err)
	}
	if _, err := h.Store.GC(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("GC while down: %v, want ErrUnavailable", err)
	}
}
