package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/store/s3"
)

// S3Options locate the S3 server a store benchmark measures.
type S3Options struct {
	// Root is the repository root (for scripts/minio.sh).
	Root string
	// Endpoint (host:port), with AccessKey and SecretKey, names a server;
	// empty: find one (FindS3).
	Endpoint             string
	AccessKey, SecretKey string
	// Bucket is the bucket to use.
	Bucket string
	// Progress receives MinIO's start-up output.
	Progress io.Writer
}

// FindS3 returns the S3 configuration of a store benchmark: opts.Endpoint,
// else the test environment of scripts/minio.sh ($THAW_TEST_S3_*), else a
// MinIO on loopback started now with scripts/minio.sh (which keeps running,
// for the next benchmark; `scripts/minio.sh stop` stops it). Objects go
// under a prefix of this process's own.
func FindS3(ctx context.Context, opts S3Options) (s3.Config, error) {
	c := s3.Config{Endpoint: opts.Endpoint, Bucket: opts.Bucket, Region: "us-east-1",
		AccessKey: opts.AccessKey, SecretKey: opts.SecretKey, Prefix: fmt.Sprintf("bench-%d", os.Getpid())}
	if c.Endpoint != "" {
		return c, nil
	}
	env := map[string]string{}
	if ep := os.Getenv("THAW_TEST_S3_ENDPOINT"); ep != "" {
		for _, k := range []string{"THAW_TEST_S3_ENDPOINT", "THAW_TEST_S3_ACCESS_KEY", "THAW_TEST_S3_SECRET_KEY", "THAW_TEST_S3_REGION"} {
			env[k] = os.Getenv(k)
		}
	} else {
		script := filepath.Join(opts.Root, "scripts", "minio.sh")
		fmt.Fprintln(opts.Progress, "no S3 endpoint given: starting MinIO with scripts/minio.sh")
		start := exec.CommandContext(ctx, script, "start")
		start.Stdout, start.Stderr = opts.Progress, opts.Progress
		if err := start.Run(); err != nil {
			return c, fmt.Errorf("start MinIO: %v: %w", err, errdefs.ErrUnavailable)
		}
		out, err := exec.CommandContext(ctx, script, "env").Output()
		if err != nil {
			return c, fmt.Errorf("MinIO env: %v: %w", err, errdefs.ErrUnavailable)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
			if ok {
				env[k] = strings.Trim(v, `"'`)
			}
		}
	}
	c.Endpoint, c.AccessKey, c.SecretKey = env["THAW_TEST_S3_ENDPOINT"], env["THAW_TEST_S3_ACCESS_KEY"], env["THAW_TEST_S3_SECRET_KEY"]
	if r := env["THAW_TEST_S3_REGION"]; r != "" {
		c.Region = r
	}
	if c.Endpoint == "" {
		return c, fmt.Errorf("no S3 endpoint: %w", errdefs.ErrUnavailable)
	}
	return c, nil
}
