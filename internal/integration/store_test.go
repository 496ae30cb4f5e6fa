package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/testminio"
)

// `thaw serve` with an S3 store starts and serves while the object store is
// down (and has no bucket yet); a redeploy meanwhile queues the replaced
// snapshot's deletion. Once MinIO starts, the bucket holds exactly the
// current snapshot, intact. Needs THAW_TEST_MINIO_SCRIPT (scripts/minio.sh).
func TestServeWithObjectStoreDown(t *testing.T) {
	minio := testminio.Private(t) // this test stops it
	ctl := minio.Run
	ctl("stop")
	endpoint := minio.Endpoint()

	s3Env(t)
	storeArgs := []string{"--s3-endpoint", endpoint, "--s3-bucket", "thaw-serve-down"}

	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startServe(t, dir, token, storeArgs...)
	defer p.Stop()
	deploy(t, p, "hello", "examples/hello", api.Config{})
	first := invoke(t, p, "hello", &api.InvokeRequest{Path: "/?name=down"})
	info := deploy(t, p, "hello", "examples/hello", api.Config{})
	if got := invoke(t, p, "hello", &api.InvokeRequest{Path: "/?name=down"}); string(got.Body) != string(first.Body) {
		t.Fatalf("after redeploy %q, before %q", got.Body, first.Body)
	}

	ctl("start")
	want := "hello." + info.Snapshot.ID
	ls := append([]string{"store", "ls", "--cache-dir", t.TempDir()}, storeArgs...)
	var out string
	// The worker's uploader and deleter retry every 5 s.
	for deadline := time.Now().Add(90 * time.Second); ; {
		code, stdout, stderr := cli(t, p, ls...)
		out = strings.TrimSpace(stdout)
		if code == 0 && out == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bucket lists %q (exit %d, %s), want only %s\n%s", out, code, stderr, want, p.Log())
		}
		time.Sleep(time.Second)
	}
	verify := append([]string{"store", "verify", "--cache-dir", t.TempDir()}, storeArgs...)
	if code, stdout, stderr := cli(t, p, verify...); code != 0 {
		t.Fatalf("store verify: exit %d\n%s%s", code, stdout, stderr)
	}
}
