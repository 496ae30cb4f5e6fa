package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/worker"
)

// lockedBackend is a backend whose function state is locked, as a
// function's mutex is while it reads its snapshot's working set: Get and
// Invoke block until the test ends.
type lockedBackend struct {
	*fakeBackend
	held chan struct{}
	gets chan string
}

func (b *lockedBackend) Get(name string) (*worker.Info, error) {
	b.gets <- name
	<-b.held
	return b.fakeBackend.Get(name)
}

func (b *lockedBackend) Invoke(ctx context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	<-b.held
	return b.fakeBackend.Invoke(ctx, name, req, opts)
}

// TestUnauthenticatedInvokeSkipsFunctionState checks that a request without
// the token for a private function is answered 401 from the registry alone:
// it neither waits for the function's state (Get) nor reads anything.
func TestUnauthenticatedInvokeSkipsFunctionState(t *testing.T) {
	b := &lockedBackend{fakeBackend: newFake(), held: make(chan struct{}), gets: make(chan string, 100)}
	defer close(b.held)
	ts := newTestServer(t, b, Options{Token: "s3cret"})
	for _, name := range []string{"hello", "nosuch"} {
		done := make(chan int, 1)
		go func() {
			resp, err := http.Get(ts.URL + "/fn/" + name + "/")
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		select {
		case status := <-done:
			if status != http.StatusUnauthorized {
				t.Errorf("%s: status %d, want 401", name, status)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer in 10 s: the 401 waits for the function's state", name)
		}
	}
	select {
	case name := <-b.gets:
		t.Errorf("the auth decision read function %q's state", name)
	default:
	}
}

func TestHostCheck(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb, Options{AllowedHosts: []string{"thaw.internal"}})
	port := ts.URL[strings.LastIndexByte(ts.URL, ':')+1:]
	for _, tc := range []struct {
		host, path string
		status     int
	}{
		{"127.0.0.1:" + port, "/v1/functions", 200},
		{"localhost:" + port, "/v1/functions", 200},
		{"[::1]:" + port, "/v1/functions", 200},
		{"thaw.internal:" + port, "/v1/functions", 200},
		{"THAW.internal.", "/fn/public/", 200},
		{"evil.example:" + port, "/v1/functions", 421},
		{"evil.example", "/fn/public/", 421},
		{"127.0.0.1.evil.example:" + port, "/metrics", 421},
		{"evil.example:" + port, "/healthz", 200},
	} {
		req, _ := http.NewRequest("GET", ts.URL+tc.path, nil)
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("Host %s %s: status %d, want %d: %s", tc.host, tc.path, resp.StatusCode, tc.status, body)
		}
		if tc.status == 421 && !strings.Contains(string(body), "--allowed-host") {
			t.Errorf("Host %s: error %s does not say how to allow the name", tc.host, body)
		}
	}
	// Without a token, pages of other sites are refused; with one, public
	// functions may be called from anywhere.
	for _, tc := range []struct {
		token, origin string
		status        int
	}{
		{"", "http://evil.example", 403},
		{"", "null", 403},
		{"", "http://127.0.0.1:" + port, 200},
		{"", "https://thaw.internal", 200},
		{"s3cret", "http://evil.example", 200},
	} {
		ots := newTestServer(t, fb, Options{Token: tc.token, AllowedHosts: []string{"thaw.internal"}})
		resp, body := do(t, "POST", ots.URL+"/fn/public/", strings.NewReader("x"), map[string]string{"Origin": tc.origin, "Content-Type": "text/plain"})
		if resp.StatusCode != tc.status {
			t.Errorf("token %q, Origin %s: %d, want %d: %s", tc.token, tc.origin, resp.StatusCode, tc.status, body)
		}
	}
	any := newTestServer(t, fb, Options{AllowedHosts: []string{"*"}})
	req, _ := http.NewRequest("GET", any.URL+"/v1/functions", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf(`--allowed-host "*": status %d`, resp.StatusCode)
	}
}

func TestRedactPaths(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"open /var/lib/thaw/snapshots/hello/20261122-ab/pages: no such file or directory",
			"open .../pages: no such file or directory"},
		{`snapshot "/data/x/y/meta.json": bad`, `snapshot ".../meta.json": bad`},
		{"lstat /tmp/a/b/: ok", "lstat .../b: ok"},
		{"no endpoint GET /v1/nothing/here", "no endpoint GET /v1/nothing/here"},
		{"path /fn/hello/a/b kept", "path /fn/hello/a/b kept"},
		{"a/b relative and /single kept", "a/b relative and /single kept"},
		{"dir=/srv/thaw/data,x", "dir=.../data,x"},
	} {
		if got := redactPaths(tc.in); got != tc.want {
			t.Errorf("redactPaths(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestErrorsHideFilePaths checks error bodies and X-Thaw-Fallback.
func TestErrorsHideFilePaths(t *testing.T) {
	const dir = "/var/lib/thaw-secret-dir"
	fb := newFake()
	ts := newTestServer(t, fb, Options{})
	fb.invokeErr = fmt.Errorf("restore: open %s/snapshots/hello/1/pages: %w", dir, errdefs.ErrCorrupt)
	resp, body := do(t, "GET", ts.URL+"/fn/hello/", nil, nil)
	if resp.StatusCode != 500 || strings.Contains(string(body), dir) || !strings.Contains(string(body), ".../pages") {
		t.Errorf("error: %d %s", resp.StatusCode, body)
	}
	fb.invokeErr = nil
	fb.timing = worker.Timing{StartKind: "cold", Fallback: "snapshot: open " + dir + "/snapshots/hello/1/ws.json: corrupt"}
	resp, body = do(t, "GET", ts.URL+"/fn/hello/", nil, nil)
	if fbh := resp.Header.Get(api.HeaderFallback); resp.StatusCode != 200 || fbh == "" || strings.Contains(fbh, dir) {
		t.Errorf("fallback header %q (status %d, %s)", fbh, resp.StatusCode, body)
	}
}

func TestMetricsHidePrivateFunctions(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "thaw_test_total", Help: "test"}, []string{"function"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "thaw_unlabelled", Help: "test"})
	reg.MustRegister(c, g)
	c.WithLabelValues("hello").Inc() // private in the fake
	c.WithLabelValues("public").Inc()
	c.WithLabelValues("gone").Inc() // deleted since
	ts := newTestServer(t, newFake(), Options{Token: "s3cret", Metrics: reg})
	_, body := do(t, "GET", ts.URL+"/metrics", nil, nil)
	if s := string(body); strings.Contains(s, `"hello"`) || strings.Contains(s, `"gone"`) || !strings.Contains(s, `function="public"`) || !strings.Contains(s, "thaw_unlabelled") {
		t.Errorf("unauthenticated /metrics:\n%s", s)
	}
	_, body = do(t, "GET", ts.URL+"/metrics", nil, map[string]string{"Authorization": "Bearer s3cret"})
	if s := string(body); !strings.Contains(s, `function="hello"`) || !strings.Contains(s, `function="gone"`) {
		t.Errorf("/metrics with the token:\n%s", s)
	}
}

// rawConn opens a connection to ts and writes a request's headers and the
// first part of its body.
func rawConn(t *testing.T, url, head string, body string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head+body); err != nil {
		t.Fatal(err)
	}
	return c
}

// readStatus reads a response's status code from c, within 10 s.
func readStatus(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBodyBudget checks that bodies reserve their size before being read
// and that a request past the budget is refused without reading its body.
func TestBodyBudget(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb, Options{MaxBody: 100, MaxBodyMemory: 150})
	post := func(n int) string {
		return fmt.Sprintf("POST /fn/hello/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n", n)
	}
	// Two senders that stall after the first bytes hold 160 bytes... the
	// second does not fit.
	slow := rawConn(t, ts.URL, post(80), "x")
	time.Sleep(200 * time.Millisecond) // let the server reserve it
	over := rawConn(t, ts.URL, post(80), "")
	if s := readStatus(t, over); s != 503 {
		t.Errorf("second body past the budget: %d, want 503", s)
	}
	// A request without a body is served meanwhile.
	if resp, body := do(t, "GET", ts.URL+"/fn/hello/", nil, nil); resp.StatusCode != 200 {
		t.Errorf("GET during the stall: %d %s", resp.StatusCode, body)
	}
	// Finishing the slow body releases its reservation.
	if _, err := io.WriteString(slow, strings.Repeat("x", 79)); err != nil {
		t.Fatal(err)
	}
	if s := readStatus(t, slow); s != 200 {
		t.Errorf("slow body once complete: %d", s)
	}
	if resp, body := do(t, "POST", ts.URL+"/fn/hello/", strings.NewReader(strings.Repeat("y", 80)), nil); resp.StatusCode != 200 {
		t.Errorf("body after release: %d %s", resp.StatusCode, body)
	}
	// A full queue answers 429 before the body is sent.
	fb.mu.Lock()
	fb.admitErr = fmt.Errorf("queue full: %w", errdefs.ErrOverloaded)
	fb.mu.Unlock()
	if s := readStatus(t, rawConn(t, ts.URL, post(90), "")); s != 429 {
		t.Errorf("full queue: %d, want 429", s)
	}
}

// TestReadTimeoutCutsTricklingBody runs the server with a short read
// timeout and a body that never completes.
func TestReadTimeoutCutsTricklingBody(t *testing.T) {
	ts := httptest.NewUnstartedServer(New(newFake(), Options{Logger: slog.New(slog.DiscardHandler)}))
	ts.Config.ReadTimeout = 500 * time.Millisecond
	ts.Start()
	defer ts.Close()
	c := rawConn(t, ts.URL, "POST /fn/hello/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n", "abc")
	if s := readStatus(t, c); s != http.StatusRequestTimeout {
		t.Errorf("trickling body: %d, want 408", s)
	}
	// A call longer than the read timeout is not cancelled by it.
	b := &lockedBackend{fakeBackend: newFake(), held: make(chan struct{}), gets: make(chan string, 1)}
	ts2 := httptest.NewUnstartedServer(New(b, Options{Logger: slog.New(slog.DiscardHandler)}))
	ts2.Config.ReadTimeout = 300 * time.Millisecond
	ts2.Start()
	defer ts2.Close()
	time.AfterFunc(time.Second, func() { close(b.held) })
	resp, body := do(t, "POST", ts2.URL+"/fn/hello/", strings.NewReader("body"), nil)
	if resp.StatusCode != 200 {
		t.Errorf("call past the read timeout: %d %s", resp.StatusCode, body)
	}
}

// TestConnLimiter checks that idle connections make room for new ones and
// that busy ones are not closed.
func TestConnLimiter(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})
	lim := NewConnLimiter(3, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnState: lim.ConnState}
	go func() { _ = srv.Serve(lim.Listener(ln)) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String()
	get := "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n"
	// Ten keep-alive connections, each idle after one request: each new
	// one closes the oldest idle one, and all are served.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 10 {
		c := rawConn(t, url, fmt.Sprintf(get, "a"), "")
		if s := readStatus(t, c); s != 200 {
			t.Fatalf("idle connection %d: %d", i, s)
		}
		conns = append(conns, c)
	}
	time.Sleep(100 * time.Millisecond)
	if n := lim.Open(); n > 3 {
		t.Errorf("%d connections open, bound 3", n)
	}
	// Three busy connections fill the bound; a fourth is refused, the
	// busy ones are served once they finish.
	var busy []net.Conn
	for range 3 {
		busy = append(busy, rawConn(t, url, fmt.Sprintf(get, "block"), ""))
	}
	time.Sleep(300 * time.Millisecond)
	if s := readStatus(t, rawConn(t, url, fmt.Sprintf(get, "a"), "")); s != 503 {
		t.Errorf("connection past the bound with all busy: %d, want 503", s)
	}
	close(release)
	for i, c := range busy {
		if s := readStatus(t, c); s != 200 {
			t.Errorf("busy connection %d: %d", i, s)
		}
	}
}
