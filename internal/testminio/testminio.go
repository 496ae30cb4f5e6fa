// Package testminio gives a test a MinIO server of its own, for tests that
// stop and restart the object store (outages, a worker started with the
// store down) without disturbing the shared one.
package testminio

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Server is a private MinIO started and stopped through scripts/minio.sh
// (whose path the test environment gives in THAW_TEST_MINIO_SCRIPT).
type Server struct {
	t        testing.TB
	script   string
	dir      string
	host     string
	endpoint string
}

// Private returns a private server, started once to learn its port (kept
// across restarts) and left running; it is stopped when the test ends. It
// skips the test when THAW_TEST_MINIO_SCRIPT is not set.
func Private(t testing.TB) *Server {
	t.Helper()
	return PrivateOn(t, "")
}

// PrivateOn is Private listening on host (an address of this machine, e.g.
// the bridge address of internal/testnet, which hosts in network namespaces
// reach) instead of 127.0.0.1; "" means 127.0.0.1.
func PrivateOn(t testing.TB, host string) *Server {
	t.Helper()
	script := os.Getenv("THAW_TEST_MINIO_SCRIPT")
	if script == "" {
		t.Skip("THAW_TEST_MINIO_SCRIPT not set: run `eval \"$(scripts/minio.sh start)\"`")
	}
	s := &Server{t: t, script: script, dir: t.TempDir(), host: host}
	s.Run("start")
	t.Cleanup(func() { s.Run("stop") })
	return s
}

// Run runs `minio.sh cmd` (start, stop) on the server.
func (s *Server) Run(cmd string) {
	s.t.Helper()
	c := exec.Command(s.script, cmd)
	c.Env = append(os.Environ(), "THAW_MINIO_DIR="+s.dir)
	if s.host != "" {
		c.Env = append(c.Env, "THAW_MINIO_HOST="+s.host)
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		s.t.Fatalf("minio.sh %s: %v\n%s%s", cmd, err, out, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "export THAW_TEST_S3_ENDPOINT="); ok {
			s.endpoint = v
		}
	}
}

// Endpoint is the server's host:port, the same across restarts.
func (s *Server) Endpoint() string { return s.endpoint }
