package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/testnet"
)

// curlFrom fetches url from inside host i's namespace (within 3 s) and
// returns curl's exit code (0, 7: refused, 28: timed out), the HTTP status
// and the body.
func curlFrom(t *testing.T, nt *testnet.Net, i int, url string, hdr ...string) (exit, status int, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := []string{"-sS", "--max-time", "3", "-w", "\n%{http_code}"}
	for _, h := range hdr {
		args = append(args, "-H", h)
	}
	out, err := nt.Command(ctx, i, "curl", append(args, url)...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), 0, ""
	} else if err != nil {
		t.Fatalf("curl from host %d: %v", i, err)
	}
	s := string(out)
	cut := strings.LastIndexByte(s, '\n')
	_, _ = fmt.Sscan(s[cut+1:], &status)
	return 0, status, s[:cut]
}

// TestNetnsHosts runs `thaw serve` on three hosts in network namespaces:
// each answers the others at its namespace address, a function deployed
// on host 2 through host 2's address answers from inside host 1, a
// partitioned host is unreachable until healed, and a killed host's port
// refuses connections. The namespaces reach a MinIO on the bridge.
func TestNetnsHosts(t *testing.T) {
	nt := testnet.New(t, 3)
	for _, h := range nt.Hosts() {
		shareCache(t, h.Data)
		nt.Serve(h.Index, thawBin, "--token", token)
	}
	for _, from := range nt.Hosts() {
		for _, to := range nt.Hosts() {
			if exit, status, _ := curlFrom(t, nt, from.Index, to.URL+"/healthz"); exit != 0 || status != http.StatusOK {
				t.Fatalf("host %d -> %s/healthz: curl exit %d, status %d", from.Index, to.URL, exit, status)
			}
		}
	}

	// Deploy on host 2 from the root namespace, over the bridge; invoke
	// it from inside host 1.
	h2 := nt.Host(2)
	wasm, _ := module(t, "examples/hello")
	c := &api.Client{BaseURL: h2.URL, Token: token, HTTP: &http.Client{Timeout: 2 * time.Minute}}
	if _, err := c.Deploy(context.Background(), "netns", wasm, api.Config{}); err != nil {
		t.Fatalf("deploy on host 2: %v\n%s", err, h2.Log())
	}
	exit, status, body := curlFrom(t, nt, 1, h2.URL+"/fn/netns/greet?name=n1", "Authorization: Bearer "+token)
	if exit != 0 || status != http.StatusOK || !strings.Contains(body, "hello, n1") {
		t.Fatalf("invoke on host 2 from host 1: curl exit %d, status %d, body %q", exit, status, body)
	}

	if os.Getenv("THAW_TEST_MINIO_SCRIPT") != "" {
		m := nt.MinIO()
		if !strings.HasPrefix(m.Endpoint(), testnet.BridgeIP+":") {
			t.Fatalf("MinIO at %s, not on the bridge", m.Endpoint())
		}
		if exit, status, _ := curlFrom(t, nt, 3, "http://"+m.Endpoint()+"/minio/health/ready"); exit != 0 || status != http.StatusOK {
			t.Fatalf("MinIO from host 3: curl exit %d, status %d", exit, status)
		}
	}

	// Partition host 3: unreachable from the root namespace and from host
	// 1, while it keeps running and host 1 stays reachable; then heal.
	h3 := nt.Host(3)
	nt.Partition(3)
	probe := &http.Client{Timeout: time.Second}
	if resp, err := probe.Get(h3.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("partitioned host 3 answered %d", resp.StatusCode)
	}
	if exit, _, _ := curlFrom(t, nt, 1, h3.URL+"/healthz"); exit == 0 {
		t.Fatal("partitioned host 3 answered host 1")
	}
	if exit, status, _ := curlFrom(t, nt, 2, nt.Host(1).URL+"/healthz"); exit != 0 || status != http.StatusOK {
		t.Fatalf("host 1 from host 2 during the partition: curl exit %d, status %d", exit, status)
	}
	if !h3.Running() {
		t.Fatalf("host 3's thaw serve exited during the partition\n%s", h3.Log())
	}
	nt.Heal(3)
	deadline := time.Now().Add(10 * time.Second)
	for {
		exit, status, _ := curlFrom(t, nt, 1, h3.URL+"/healthz")
		if exit == 0 && status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host 3 unreachable from host 1 10 s after Heal: curl exit %d, status %d", exit, status)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Kill host 2: its port refuses at once (the namespace and its
	// address stay, so this is a refusal, not a timeout).
	nt.Kill(2)
	if h2.Running() {
		t.Fatal("host 2 still running after Kill")
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(h2.URL, "http://"), 3*time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("killed host 2 accepted a connection")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("killed host 2: %v, want connection refused", err)
	}
	if exit, _, _ := curlFrom(t, nt, 1, h2.URL+"/healthz"); exit != 7 {
		t.Fatalf("killed host 2 from host 1: curl exit %d, want 7 (connection refused)", exit)
	}
}
