package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/server"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// deploy deploys pkg as name on p over the API.
func deploy(t testing.TB, p *proc, name, pkg string, cfg api.Config) *api.FunctionInfo {
	t.Helper()
	wasm, _ := module(t, pkg)
	info, err := client(p, token).Deploy(context.Background(), name, wasm, cfg)
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return info
}

// invoke calls name at path and fails the test unless it answers 200.
func invoke(t testing.TB, p *proc, name string, req *api.InvokeRequest) *api.InvokeResponse {
	t.Helper()
	res, err := client(p, token).Invoke(context.Background(), name, req)
	if err != nil {
		t.Fatalf("invoke %s %s: %v", name, req.Path, err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("invoke %s %s: status %d: %s", name, req.Path, res.Status, res.Body)
	}
	return res
}

func errorMessage(t testing.TB, body []byte) string {
	t.Helper()
	var eb struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
		t.Fatalf("body %q is not a JSON error", body)
	}
	return eb.Error
}

// TestLifecycle deploys, lists, invokes and deletes through the CLI binary
// and the API.
func TestLifecycle(t *testing.T) {
	p := shared(t)
	_, path := module(t, "examples/hello")
	steps := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"deploy", []string{"deploy", "life", path, "--memory-mib", "128", "--keep-alive", "30s"}, 0, "deployed life"},
		{"ls", []string{"ls"}, 0, "life"},
		{"invoke", []string{"invoke", "life", "/greet?name=cli"}, 0, "hello, cli (GET /greet)"},
		{"invoke post", []string{"invoke", "life", "/p", "-d", "x"}, 0, "(POST /p)"},
		{"rm", []string{"rm", "life"}, 0, ""},
		{"invoke after rm", []string{"invoke", "life"}, 3, ""},
		{"rm again", []string{"rm", "life"}, 3, ""},
	}
	for _, s := range steps {
		code, stdout, stderr := cli(t, p, s.args...)
		if code != s.code || !strings.Contains(stdout, s.want) {
			t.Fatalf("%s: exit %d (want %d), stdout %q (want %q), stderr %q", s.name, code, s.code, stdout, s.want, stderr)
		}
	}
	// The same over HTTP.
	info := deploy(t, p, "life2", "examples/hello", api.Config{MemoryMiB: 64})
	if info.Name != "life2" || info.Config.MemoryMiB != 64 || info.Snapshot == nil {
		t.Errorf("deploy info %+v", info)
	}
	c := client(p, token)
	got, err := c.Get(context.Background(), "life2")
	if err != nil || got.ModuleSHA != info.ModuleSHA {
		t.Errorf("get = %+v, %v", got, err)
	}
	fns, err := c.List(context.Background())
	found := false
	for _, f := range fns {
		found = found || f.Name == "life2"
	}
	if err != nil || !found {
		t.Errorf("list = %v, %v", fns, err)
	}
	if err := c.Delete(context.Background(), "life2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "life2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

func TestInvokeExamples(t *testing.T) {
	p := shared(t)
	deploy(t, p, "hello", "examples/hello", api.Config{})
	deploy(t, p, "jsontransform", "examples/jsontransform", api.Config{})
	res := invoke(t, p, "hello", &api.InvokeRequest{Path: "/a/b?name=thaw"})
	if string(res.Body) != "hello, thaw (GET /a/b)\n" {
		t.Errorf("hello = %q", res.Body)
	}
	res = invoke(t, p, "jsontransform", &api.InvokeRequest{Body: []byte(`{"k":["x",1,2.5]}`)})
	var out struct {
		Doc     map[string][]any `json:"doc"`
		Numbers int              `json:"numbers"`
		Sum     float64          `json:"sum"`
	}
	if err := json.Unmarshal(res.Body, &out); err != nil || out.Numbers != 2 || out.Sum != 3.5 || out.Doc["k"][0] != "X" {
		t.Errorf("jsontransform = %s (%v)", res.Body, err)
	}
	// A function's own 4xx is passed through, not turned into an error.
	res, err := client(p, token).Invoke(context.Background(), "jsontransform", &api.InvokeRequest{Method: "GET"})
	if err != nil || res.Status != http.StatusMethodNotAllowed || res.Header.Get(api.HeaderError) != "" {
		t.Errorf("GET jsontransform = %+v, %v", res, err)
	}
}

// wasip1Command builds a plain Go wasip1 command: valid wasm, no thaw ABI.
func wasip1Command(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"go.mod": "module example.com/cmd\n\ngo 1.24\n", "main.go": "package main\n\nfunc main() { println(\"hi\") }\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", "cmd.wasm", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build wasip1 command: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cmd.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInput(t *testing.T) {
	p := shared(t)
	deploy(t, p, "hello", "examples/hello", api.Config{})
	put := func(name string, body []byte, hdr map[string]string) (int, []byte) {
		h := map[string]string{"Content-Type": "application/wasm"}
		for k, v := range hdr {
			h[k] = v
		}
		status, _, b := raw(t, "PUT", p.URL+"/v1/functions/"+name, token, bytes.NewReader(body), h)
		return status, b
	}
	for _, tc := range []struct {
		name   string
		fn     string
		body   []byte
		hdr    map[string]string
		status int
		reason string
	}{
		{"malformed module", "bad1", []byte("this is not wasm at all"), nil, 400, ""},
		{"truncated module", "bad2", []byte("\x00asm\x01\x00\x00\x00\x01\x05"), nil, 400, ""},
		{"empty (module)", "bad3", []byte("\x00asm\x01\x00\x00\x00"), nil, 400, "module"},
		{"wasip1 command", "bad4", wasip1Command(t), nil, 400, "export"},
		{"bad config", "bad5", []byte("\x00asm\x01\x00\x00\x00"), map[string]string{api.HeaderConfig: `{"memory_mib": -1}`}, 400, "memory_mib"},
		{"bad name", "Bad_Name", []byte("\x00asm\x01\x00\x00\x00"), nil, 400, "name"},
		{"module over the limit", "bad6", make([]byte, server.DefaultMaxModule+1), nil, 413, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := put(tc.fn, tc.body, tc.hdr)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if msg := errorMessage(t, body); !strings.Contains(msg, tc.reason) {
				t.Errorf("error %q does not mention %q", msg, tc.reason)
			}
			if status, _, _ := raw(t, "GET", p.URL+"/v1/functions/"+tc.fn, token, nil, nil); status != 404 {
				t.Errorf("failed deploy left function %s behind (GET: %d)", tc.fn, status)
			}
		})
	}
	t.Run("unknown function", func(t *testing.T) {
		status, _, body := raw(t, "GET", p.URL+"/fn/nosuch/", token, nil, nil)
		if status != 404 || !strings.Contains(errorMessage(t, body), "nosuch") {
			t.Errorf("status %d: %s", status, body)
		}
	})
	t.Run("body over the limit", func(t *testing.T) {
		status, _, body := raw(t, "POST", p.URL+"/fn/hello/", token, bytes.NewReader(make([]byte, server.DefaultMaxBody+1)), nil)
		if status != 413 {
			t.Errorf("status %d: %s", status, body)
		}
		invoke(t, p, "hello", &api.InvokeRequest{})
	})
	t.Run("bad mode header", func(t *testing.T) {
		status, _, body := raw(t, "GET", p.URL+"/fn/hello/", token, nil, map[string]string{api.HeaderMode: "teleport"})
		if status != 400 {
			t.Errorf("status %d: %s", status, body)
		}
	})
}

// TestGuestFaults checks that panics, traps, timeouts and memory bombs
// answer clearly and leave the function serving.
func TestGuestFaults(t *testing.T) {
	p := shared(t)
	deploy(t, p, "faulty", "examples/faulty", api.Config{MemoryMiB: 64, Timeout: api.Duration(2 * time.Second), MaxInstances: 2})
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/panic", 502, "deliberate panic"},
		{"/nil", 502, "nil pointer"},
		{"/trap", 502, ""},
		{"/loop", 504, ""},
		{"/oom", 502, ""},
		{"/exit", 502, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			status, hdr, body := raw(t, "GET", p.URL+"/fn/faulty"+tc.path, token, nil, nil)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			msg := errorMessage(t, body)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if hdr.Get(api.HeaderError) == "" {
				t.Errorf("no %s header", api.HeaderError)
			}
			t.Logf("%s -> %d %s", tc.path, status, msg)
			// The next request is served normally.
			if res := invoke(t, p, "faulty", &api.InvokeRequest{Path: "/ok"}); string(res.Body) != "ok\n" {
				t.Errorf("after %s: %q", tc.path, res.Body)
			}
		})
	}
}

func TestRestartPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startServe(t, dir, token)
	deploy(t, p, "persist", "examples/hello", api.Config{Public: true})
	want := invoke(t, p, "persist", &api.InvokeRequest{Path: "/?name=before"})
	if err := p.Stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.Log())
	}
	p = startServe(t, dir, token)
	defer p.Stop()
	fns, err := client(p, token).List(context.Background())
	if err != nil || len(fns) != 1 || fns[0].Name != "persist" || !fns[0].Config.Public {
		t.Fatalf("after restart: %+v, %v", fns, err)
	}
	// The restarted worker serves from the persisted snapshot.
	got := invoke(t, p, "persist", &api.InvokeRequest{Path: "/?name=before"})
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("after restart %q, before %q", got.Body, want.Body)
	}
	if got.Start != "restore" && got.Start != "cold" {
		t.Errorf("start %q", got.Start)
	}
}

func instances(t testing.TB, p *proc, name string) int {
	t.Helper()
	info, err := client(p, token).Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return info.Idle + info.Busy
}

// TestSpareRegion runs restores beside running instances, each of which
// needs a memory region of its own: a bulk restore that leaves the region
// pool without a region of its function prepares a spare once it has
// answered (thaw_spare_regions_total), and the next such restore takes it,
// its working-set pages already mapped (Server-Timing's reused count). A
// server of its own, so that the counts are this test's.
func TestSpareRegion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	shareCache(t, dir)
	p := startServe(t, dir, token)
	defer p.Stop()
	deploy(t, p, "spare", "examples/hello", api.Config{MaxInstances: 8, KeepAlive: api.Duration(10 * time.Minute), RestoreMode: api.ModeBulk})
	fresh := func() (start string, reused string) {
		res := invoke(t, p, "spare", &api.InvokeRequest{Mode: api.ModeBulk})
		s, _ := res.Metric("start")
		r, _ := res.Metric("reused")
		return s.Desc, r.Desc
	}
	spares := func(want float64) {
		t.Helper()
		eventually(t, fmt.Sprintf("%v spare regions made", want), p, func() bool {
			return metric(t, p, "thaw_spare_regions_total", `outcome="made"`) >= want
		})
		if made := metric(t, p, "thaw_spare_regions_total", `outcome="made"`); made != want {
			t.Fatalf("%v spare regions made, want %v", made, want)
		}
	}
	// The first restore runs lazily if the deploy recorded no working set
	// (and records one); it takes no region from the pool.
	start, reused := fresh()
	if start != "restore:bulk" {
		start, reused = fresh()
	}
	if start != "restore:bulk" || reused != "" && reused != "0" {
		t.Fatalf("first bulk restore: start %q, reused pages %q; want a bulk restore into a new region", start, reused)
	}
	spares(1)
	start, reused = fresh()
	if n, _ := strconv.Atoi(reused); start != "restore:bulk" || n == 0 {
		t.Fatalf("restore after a spare was made: start %q, reused pages %q; want a bulk restore into the spare", start, reused)
	}
	// It took the only pooled region: another spare.
	spares(2)
	if failed := metric(t, p, "thaw_spare_regions_total", `outcome="failed"`); failed != 0 {
		t.Fatalf("%v spares failed", failed)
	}
}

func TestScaleToZero(t *testing.T) {
	p := shared(t)
	deploy(t, p, "zero", "examples/hello", api.Config{KeepAlive: api.Duration(time.Second)})
	invoke(t, p, "zero", &api.InvokeRequest{})
	if n := instances(t, p, "zero"); n < 1 {
		t.Fatalf("%d instances right after an invocation", n)
	}
	deadline := time.Now().Add(20 * time.Second)
	for instances(t, p, "zero") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still %d instances 20s after a 1s keep-alive", instances(t, p, "zero"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And it scales back up.
	if res := invoke(t, p, "zero", &api.InvokeRequest{}); res.Start == "warm" {
		t.Errorf("first call after scale to zero was warm")
	}
}

func TestConcurrency(t *testing.T) {
	p := shared(t)
	t.Run("all succeed", func(t *testing.T) {
		deploy(t, p, "conc", "examples/hello", api.Config{MaxInstances: 2})
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				res, err := client(p, token).Invoke(context.Background(), "conc", &api.InvokeRequest{Path: fmt.Sprintf("/?name=%d", i)})
				if err == nil && string(res.Body) != fmt.Sprintf("hello, %d (GET /)\n", i) {
					err = fmt.Errorf("request %d answered %d %q", i, res.Status, res.Body)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if n := instances(t, p, "conc"); n > 2 {
			t.Errorf("%d instances with max_instances 2", n)
		}
	})
	t.Run("queue full", func(t *testing.T) {
		deploy(t, p, "queue", "examples/faulty", api.Config{MaxInstances: 1, MaxQueue: 1, Timeout: api.Duration(3 * time.Second)})
		slow := make(chan int, 1)
		go func() {
			status, _, _ := raw(t, "GET", p.URL+"/fn/queue/loop", token, nil, nil)
			slow <- status
		}()
		// Wait until the slow request holds the only instance.
		waitBusy(t, p, "queue", 30*time.Second)
		var wg sync.WaitGroup
		statuses := make(chan int, 4)
		for range 4 {
			wg.Go(func() {
				status, _, _ := raw(t, "GET", p.URL+"/fn/queue/ok", token, nil, nil)
				statuses <- status
			})
		}
		wg.Wait()
		close(statuses)
		counts := map[int]int{}
		for s := range statuses {
			counts[s]++
		}
		if counts[429] < 1 || counts[200]+counts[429] != 4 {
			t.Errorf("statuses %v: want some 429 and the rest 200", counts)
		}
		if s := <-slow; s != 504 {
			t.Errorf("slow request: %d, want 504", s)
		}
	})
}

func TestAuth(t *testing.T) {
	p := shared(t)
	deploy(t, p, "private", "examples/hello", api.Config{})
	deploy(t, p, "open", "examples/hello", api.Config{Public: true})
	for _, tc := range []struct {
		name   string
		method string
		path   string
		tok    string
		hdr    map[string]string
		status int
	}{
		{"list without token", "GET", "/v1/functions", "", nil, 401},
		{"list wrong token", "GET", "/v1/functions", "wrong", nil, 401},
		{"list with token", "GET", "/v1/functions", token, nil, 200},
		{"delete without token", "DELETE", "/v1/functions/private", "", nil, 401},
		{"private without token", "GET", "/fn/private/", "", nil, 401},
		{"private with token", "GET", "/fn/private/", token, nil, 200},
		{"public without token", "GET", "/fn/open/", "", nil, 200},
		{"experiment header without token", "GET", "/fn/open/", "", map[string]string{api.HeaderMode: "cold"}, 401},
		{"metrics", "GET", "/metrics", "", nil, 200},
		{"healthz", "GET", "/healthz", "", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := raw(t, tc.method, p.URL+tc.path, tc.tok, nil, tc.hdr)
			if status != tc.status {
				t.Errorf("status %d, want %d: %s", status, tc.status, body)
			}
		})
	}
	code, _, stderr := cli(t, p, "ls", "--token", "wrong")
	if code != 4 {
		t.Errorf("thaw ls with a wrong token: exit %d, want 4 (%s)", code, stderr)
	}
}

func TestRefusesPublicListenWithoutToken(t *testing.T) {
	cmd := exec.Command(thawBin, "serve", "--addr", "0.0.0.0:0", "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "THAW_TOKEN=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "token") {
		t.Errorf("thaw serve on 0.0.0.0 without token: %v: %s", err, out)
	}
}

func TestServerTimingAndMetrics(t *testing.T) {
	p := shared(t)
	deploy(t, p, "timed", "examples/hello", api.Config{})
	for _, mode := range []restore.Mode{restore.Cold, restore.Eager, restore.Warm} {
		status, hdr, body := raw(t, "GET", p.URL+"/fn/timed/", token, nil, map[string]string{api.HeaderMode: string(mode)})
		if status != 200 {
			t.Fatalf("%s: %d %s", mode, status, body)
		}
		ms, err := api.ParseServerTiming(hdr.Get(api.HeaderServerTiming))
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		byName := map[string]api.Metric{}
		for _, m := range ms {
			byName[m.Name] = m
		}
		for _, n := range []string{"queue", "start", "exec"} {
			if m, ok := byName[n]; !ok || !m.HasDur || m.Dur < 0 {
				t.Errorf("%s: metric %s missing or without dur in %q", mode, n, hdr.Get(api.HeaderServerTiming))
			}
		}
		wantStart := map[restore.Mode]string{restore.Cold: "cold", restore.Eager: "restore", restore.Warm: "warm"}[mode]
		if hdr.Get(api.HeaderStart) != wantStart {
			t.Errorf("%s: %s = %q, want %q", mode, api.HeaderStart, hdr.Get(api.HeaderStart), wantStart)
		}
		if mode == restore.Eager {
			if byName["start"].Desc != "restore:eager" {
				t.Errorf("eager start desc %q", byName["start"].Desc)
			}
			if _, ok := byName["map"]; !ok {
				t.Errorf("restore without a map stage: %q", hdr.Get(api.HeaderServerTiming))
			}
		}
	}
	status, _, body := raw(t, "GET", p.URL+"/metrics", token, nil, nil) // private functions need the token
	if status != 200 || !bytes.Contains(body, []byte(`thaw_invocations_total{function="timed"`)) {
		t.Errorf("metrics (%d) lack thaw_invocations_total for timed", status)
	}
}

// uffdAvailable reports whether lazy restore modes can work here.
func uffdAvailable() bool {
	_, err := os.Stat("/dev/userfaultfd")
	return err == nil && os.Geteuid() == 0
}

// TestRestoreModes: every mode answers exactly like a cold boot.
func TestRestoreModes(t *testing.T) {
	p := shared(t)
	deploy(t, p, "modes-hello", "examples/hello", api.Config{})
	deploy(t, p, "modes-json", "examples/jsontransform", api.Config{})
	reqs := map[string]*api.InvokeRequest{
		"modes-hello": {Path: "/x?name=modes"},
		"modes-json":  {Body: []byte(`{"a":[1,2,{"b":"c"}],"d":"e"}`)},
	}
	for fn, req := range reqs {
		cold := *req
		cold.Mode = api.ModeCold
		want := invoke(t, p, fn, &cold)
		for _, mode := range restore.Modes {
			t.Run(fn+"/"+string(mode), func(t *testing.T) {
				// Working-set modes record on their first restore and
				// use the working set from the second on.
				calls := 1
				if mode.UsesWorkingSet() {
					calls = 2
				}
				var res *api.InvokeResponse
				for range calls {
					r := *req
					r.Mode = api.Mode(mode)
					res = invoke(t, p, fn, &r)
					if !bytes.Equal(res.Body, want.Body) {
						t.Fatalf("body %q, cold %q", res.Body, want.Body)
					}
				}
				if mode == restore.Mmap || mode == restore.Bulk {
					// From disk rather than the page cache: same answer.
					r := *req
					r.Mode, r.DropCache = api.Mode(mode), true
					if got := invoke(t, p, fn, &r); !bytes.Equal(got.Body, want.Body) {
						t.Fatalf("with a dropped cache: body %q, cold %q", got.Body, want.Body)
					}
				}
				fb := res.Header.Get(api.HeaderFallback)
				start, _ := res.Metric("start")
				switch {
				case mode == restore.Cold:
					if res.Start != "cold" {
						t.Errorf("start %q", res.Start)
					}
				case fb != "" && !uffdAvailable() && mode != restore.Eager && mode != restore.Mmap:
					t.Logf("no userfaultfd here: %s fell back: %s", mode, fb)
				case fb != "":
					t.Errorf("%s fell back to cold: %s", mode, fb)
				case start.Desc != "restore:"+string(mode):
					t.Errorf("start desc %q, want restore:%s", start.Desc, mode)
				}
			})
		}
	}
}

// TestDemo runs `thaw demo` as the README tells a new user to.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo builds and boots every example")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, thawBin, "demo", "--trials", "1")
	cmd.Dir = testwasm.Root()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("thaw demo: %v\n%s", err, out)
	}
	for _, want := range []string{"hello", "jsontransform", "initheavy", "speedup"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("fell back")) {
		t.Errorf("a demo restore fell back to cold:\n%s", out)
	}
	t.Logf("%s", out)
}
