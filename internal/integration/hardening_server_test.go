package integration

// Hostile clients against the real `thaw serve` (issue 18, items 3, 6, 7,
// 11 and 12): slow and idle connections, aborted calls, DNS rebinding and
// what unauthenticated callers may learn.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
)

// procUsage reads a process's resident memory (KiB) and open descriptors.
func procUsage(t testing.TB, pid int) (rssKiB int64, fds int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	rssKiB, _ = strconv.ParseInt(string(m[1]), 10, 64)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return rssKiB, len(ents)
}

// hostOf is the host:port of a server URL.
func hostOf(p *proc) string { return strings.TrimPrefix(p.URL, "http://") }

// TestSlowAndIdleConnectionsBounded holds 300 connections that send all but
// the last byte of a 6 MB body and 2000 idle keep-alive connections, and
// checks that the worker's memory and descriptors stay bounded while a
// legitimate caller is served.
func TestSlowAndIdleConnectionsBounded(t *testing.T) {
	const (
		maxConns = 256
		budget   = 32 // MiB of bodies
		bodySize = 6_000_000
		slowN    = 300
		idleN    = 2000
	)
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startServe(t, dir, token, "--max-conns", strconv.Itoa(maxConns), "--max-body-memory-mib", strconv.Itoa(budget))
	defer p.Stop()
	deploy(t, p, "sink", "examples/hello", api.Config{Public: true, MaxQueue: 1000})
	invoke(t, p, "sink", &api.InvokeRequest{Path: "/"})
	pid := p.cmd.Process.Pid
	rss0, fds0 := procUsage(t, pid)
	t.Logf("before: RSS %d MiB, %d fds", rss0>>10, fds0)

	var mu sync.Mutex
	var conns []net.Conn
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	body := bytes.Repeat([]byte("x"), bodySize-1)
	head := fmt.Sprintf("POST /fn/sink/ HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", hostOf(p), bodySize)
	var wg sync.WaitGroup
	var refused, held int
	for range slowN {
		wg.Go(func() {
			c, err := net.Dial("tcp", hostOf(p))
			if err != nil {
				return
			}
			keep(c)
			_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			_, err = c.Write(append([]byte(head), body...))
			mu.Lock()
			if err != nil {
				refused++ // the server answered and closed without reading
			} else {
				held++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	idleHead := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", hostOf(p))
	for i := range idleN {
		c, err := net.Dial("tcp", hostOf(p))
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		keep(c)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, idleHead); err != nil {
			continue // closed to make room: fine
		}
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
		}
	}
	time.Sleep(2 * time.Second)
	rss, fds := procUsage(t, pid)
	t.Logf("with %d slow (%d sent in full to the socket, %d cut short) and %d idle connections: RSS %d MiB, %d fds",
		slowN, held, refused, idleN, rss>>10, fds)

	// A legitimate caller is served, with and without a small body.
	cl := &http.Client{Timeout: 20 * time.Second}
	resp, err := cl.Get(p.URL + "/fn/sink/?name=legit")
	if err != nil {
		t.Fatalf("legitimate GET during the attack: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "hello, legit") {
		t.Errorf("legitimate GET: %d %s", resp.StatusCode, b)
	}
	resp, err = cl.Post(p.URL+"/fn/sink/", "text/plain", strings.NewReader("small body"))
	if err != nil {
		t.Fatalf("legitimate POST during the attack: %v", err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("legitimate POST: %d %s", resp.StatusCode, b)
	}

	// Bounds: descriptors at most the connection bound over the start;
	// memory at most the body budget plus slack for connection buffers
	// and the runtime (without the bound: ~9 MiB per slow connection).
	if fds > fds0+maxConns+32 {
		t.Errorf("%d open fds, more than %d at the start + %d connections", fds, fds0, maxConns)
	}
	if limit := rss0 + budget<<10 + 160<<10; rss > limit {
		t.Errorf("RSS %d MiB, more than %d MiB at the start + the %d MiB body budget + 160 MiB", rss>>10, rss0>>10, budget)
	}
	if !strings.Contains(p.Log(), "listening") {
		t.Error("server log lost")
	}
}

// TestTricklingBodyIsCut sends a body's first bytes and then nothing: the
// read timeout answers 408 and frees the connection.
func TestTricklingBodyIsCut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startServe(t, dir, token, "--read-timeout", "2s")
	defer p.Stop()
	deploy(t, p, "trickle", "examples/hello", api.Config{})
	c, err := net.Dial("tcp", hostOf(p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /fn/trickle/ HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\nabc", hostOf(p), token)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within 20 s to a body that stalls (read timeout 2 s): %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled body: %d, want 408", resp.StatusCode)
	}
	// Headers are bounded too: 200 KiB of them are refused.
	status, _, _ := raw(t, "GET", p.URL+"/fn/trickle/", token, nil, map[string]string{"X-Pad": strings.Repeat("p", 200<<10)})
	if status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("200 KiB of headers: %d, want 431", status)
	}
}

// metricSum adds the values of a metric's series for one function.
func metricSum(t testing.TB, p *proc, metric, fn string) float64 {
	t.Helper()
	status, _, body := raw(t, "GET", p.URL+"/metrics", token, nil, nil)
	if status != 200 {
		t.Fatalf("metrics: %d", status)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, metric+"{") && strings.Contains(line, `function="`+fn+`"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// TestAbortedCallsKeepInstance aborts calls in the middle and checks that
// the instance finishes them and stays: no instance is discarded and no
// restore or boot follows.
func TestAbortedCallsKeepInstance(t *testing.T) {
	p := shared(t)
	deploy(t, p, "abort", "examples/faulty", api.Config{MaxInstances: 1, Timeout: api.Duration(20 * time.Second), RestoreMode: api.ModeEager})
	invoke(t, p, "abort", &api.InvokeRequest{Path: "/ok"})
	starts := metricSum(t, p, "thaw_instance_starts_total", "abort")
	for i := range 3 {
		// The client gives up once the call is seen running: a request
		// abandoned before it reaches an instance is rightly never run (on
		// a loaded machine a fixed client timeout can expire that early).
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/fn/abort/spin?ms=2000", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		done := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("answered %d", resp.StatusCode)
			}
			done <- err
		}()
		waitBusy(t, p, "abort", 30*time.Second)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("call %d: %v, want the client's abort", i, err)
		}
		// Wait for the abandoned call to end and its instance to settle.
		deadline := time.Now().Add(30 * time.Second)
		for {
			info, err := client(p, token).Get(context.Background(), "abort")
			if err != nil {
				t.Fatal(err)
			}
			if info.Busy == 0 {
				if info.Idle != 1 {
					t.Fatalf("after aborted call %d: %d idle instances, want the one that served it", i, info.Idle)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("aborted call %d still busy after 30 s", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	status, hdr, body := raw(t, "GET", p.URL+"/fn/abort/ok", token, nil, nil)
	if status != 200 || hdr.Get(api.HeaderStart) != "warm" {
		t.Errorf("after aborted calls: %d %s=%q %s", status, api.HeaderStart, hdr.Get(api.HeaderStart), body)
	}
	if now := metricSum(t, p, "thaw_instance_starts_total", "abort"); now != starts {
		t.Errorf("instance starts went from %v to %v: aborted calls cost new instances", starts, now)
	}
	if ok := metricSum(t, p, "thaw_invocations_total", "abort"); ok < 5 {
		t.Errorf("%v invocations counted, want the 3 aborted ones to have run to the end too", ok)
	}
}

// waitBusy waits until one of fn's instances is serving.
func waitBusy(t *testing.T, p *proc, fn string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, err := client(p, token).Get(context.Background(), fn)
		if err != nil {
			t.Fatal(err)
		}
		if info.Busy > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no instance of %s busy within %v", fn, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDNSRebindingRefused runs a server without a token and sends requests
// addressed to a foreign name, as a page rebinding its DNS name would.
func TestDNSRebindingRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startServe(t, dir, "", "--allowed-host", "thaw.test")
	defer p.Stop()
	_, port, _ := net.SplitHostPort(hostOf(p))
	wasm, _ := module(t, "examples/hello")
	for _, tc := range []struct {
		host, method, path string
		body               []byte
		status             int
	}{
		{"evil.example:" + port, "GET", "/v1/functions", nil, 421},
		{"evil.example:" + port, "PUT", "/v1/functions/planted", wasm, 421},
		{"evil.example:" + port, "GET", "/metrics", nil, 421},
		{"127.0.0.1:" + port, "PUT", "/v1/functions/hello", wasm, 200},
		{"evil.example:" + port, "GET", "/fn/hello/", nil, 421},
		{"evil.example:" + port, "DELETE", "/v1/functions/hello", nil, 421},
		{"127.0.0.1:" + port, "GET", "/fn/hello/", nil, 200},
		{"localhost:" + port, "GET", "/v1/functions", nil, 200},
		{"thaw.test:" + port, "GET", "/fn/hello/", nil, 200},
	} {
		req, _ := http.NewRequest(tc.method, p.URL+tc.path, bytes.NewReader(tc.body))
		req.Host = tc.host
		resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s Host %s: %d, want %d: %.200s", tc.method, tc.path, tc.host, resp.StatusCode, tc.status, b)
		}
	}
	// A page of another site posting to the server's own address (no
	// rebinding: a blind cross-site request, which needs no preflight).
	status, _, b := raw(t, "POST", p.URL+"/fn/hello/", "", strings.NewReader("x"),
		map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"})
	if status != http.StatusForbidden {
		t.Errorf("cross-site POST without a token: %d, want 403: %s", status, b)
	}
	if code, out, _ := cli(t, p, "ls"); code != 0 || strings.Contains(out, "planted") {
		t.Errorf("thaw ls: %d %s", code, out)
	}
}

// TestCallersLearnNoPathsOrPrivateNames damages a public function's
// snapshot so that its next start falls back to a cold boot, and checks
// that no response to an unauthenticated caller shows the data directory,
// and that /metrics without the token names no private function.
func TestCallersLearnNoPathsOrPrivateNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, dir, token)
	defer p.Stop()
	info := deploy(t, p, "pubfn", "examples/hello", api.Config{Public: true, RestoreMode: api.ModeEager, KeepAlive: api.Duration(time.Second)})
	deploy(t, p, "secretfn", "examples/hello", api.Config{})
	invoke(t, p, "secretfn", &api.InvokeRequest{Path: "/"})
	if info.Snapshot == nil {
		t.Fatal("no snapshot")
	}
	snapDir := filepath.Join(dir, "snapshots", "pubfn", info.Snapshot.ID)
	ents, err := os.ReadDir(snapDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".img") {
			if err := os.Remove(filepath.Join(snapDir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Wait for the deploy's instance to be reaped (keep_alive 1 s).
	deadline := time.Now().Add(30 * time.Second)
	for instances(t, p, "pubfn") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("pubfn kept its instance past its keep-alive")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var seen []string
	check := func(what string, status int, hdr http.Header, body []byte) {
		var sb strings.Builder
		_ = hdr.Write(&sb)
		all := sb.String() + string(body)
		seen = append(seen, fmt.Sprintf("%s: %d %s %s", what, status, hdr.Get(api.HeaderFallback), body))
		if strings.Contains(all, abs) || strings.Contains(all, dir) {
			t.Errorf("%s: the response shows the data directory %s:\n%s", what, abs, all)
		}
	}
	status, hdr, body := raw(t, "GET", p.URL+"/fn/pubfn/", "", nil, nil)
	if status != 200 || hdr.Get(api.HeaderFallback) == "" {
		t.Errorf("restore of the damaged snapshot: %d, fallback %q (want a fallback)", status, hdr.Get(api.HeaderFallback))
	}
	check("fallback", status, hdr, body)
	status, hdr, body = raw(t, "GET", p.URL+"/fn/secretfn/", "", nil, nil)
	check("private", status, hdr, body)
	status, hdr, body = raw(t, "PUT", p.URL+"/v1/functions/x", "", strings.NewReader("junk"), nil)
	check("deploy without token", status, hdr, body)
	for _, s := range seen {
		t.Log(s)
	}

	status, _, body = raw(t, "GET", p.URL+"/metrics", "", nil, nil)
	if status != 200 || bytes.Contains(body, []byte("secretfn")) || !bytes.Contains(body, []byte(`function="pubfn"`)) {
		t.Errorf("/metrics without the token (%d): names secretfn or lacks pubfn", status)
	}
	status, _, body = raw(t, "GET", p.URL+"/metrics", token, nil, nil)
	if status != 200 || !bytes.Contains(body, []byte(`function="secretfn"`)) {
		t.Errorf("/metrics with the token (%d) lacks secretfn", status)
	}
}
