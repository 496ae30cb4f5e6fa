package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/restore"
	"github.com/thaw-run/thaw/internal/store"
	"github.com/thaw-run/thaw/internal/worker"
)

// fakeBackend records calls and answers from a table of functions.
type fakeBackend struct {
	mu       sync.Mutex
	fns      map[string]*worker.Info
	lastReq  *abi.Request
	lastOpts worker.InvokeOptions
	lastWasm []byte
	lastCfg  worker.Config
	// invokeErr, when set, is returned by Invoke; admitErr by Admit.
	invokeErr error
	admitErr  error
	resp      *abi.Response
	timing    worker.Timing
}

func newFake() *fakeBackend {
	return &fakeBackend{fns: map[string]*worker.Info{
		"hello":  {Name: "hello"},
		"public": {Name: "public", Config: worker.Config{Public: true}},
	}}
}

func (f *fakeBackend) Deploy(_ context.Context, name string, wasm []byte, cfg worker.Config) (*worker.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return nil, fmt.Errorf("not wasm: %w", errdefs.ErrInvalid)
	}
	f.lastWasm, f.lastCfg = wasm, cfg
	info := &worker.Info{Name: name, Config: cfg, ModuleSize: len(wasm)}
	f.fns[name] = info
	return info, nil
}

func (f *fakeBackend) Get(name string) (*worker.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if info, ok := f.fns[name]; ok {
		return info, nil
	}
	return nil, fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
}

func (f *fakeBackend) Public(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, ok := f.fns[name]
	return ok && info.Config.Public
}

func (f *fakeBackend) Admit(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.fns[name]; !ok {
		return fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	return f.admitErr
}

func (f *fakeBackend) List() []worker.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []worker.Info
	for _, i := range f.fns {
		out = append(out, *i)
	}
	return out
}

func (f *fakeBackend) Delete(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.fns[name]; !ok {
		return fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	delete(f.fns, name)
	return nil
}

func (f *fakeBackend) Invoke(_ context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.fns[name]; !ok {
		return nil, fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	f.lastReq, f.lastOpts = req, opts
	if f.invokeErr != nil {
		return nil, f.invokeErr
	}
	resp := f.resp
	if resp == nil {
		resp = &abi.Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("hi " + req.Path)}
	}
	t := f.timing
	if t.StartKind == "" {
		t = worker.Timing{Queue: time.Microsecond, Start: 2 * time.Millisecond, Exec: 500 * time.Microsecond, StartKind: "warm", Mode: restore.Bulk}
	}
	return &worker.Result{Response: resp, Timing: t}, nil
}

func newTestServer(t *testing.T, b Backend, opts Options) *httptest.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ts := httptest.NewServer(New(b, opts))
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{fmt.Errorf("x: %w", errdefs.ErrInvalid), 400},
		{fmt.Errorf("x: %w", errdefs.ErrNotFound), 404},
		{fmt.Errorf("x: %w", errdefs.ErrTooLarge), 413},
		{&http.MaxBytesError{Limit: 3}, 413},
		{fmt.Errorf("x: %w", errdefs.ErrOverloaded), 429},
		{fmt.Errorf("x: %w", errdefs.ErrGuest), 502},
		{fmt.Errorf("x: %w", errdefs.ErrTimeout), 504},
		{context.DeadlineExceeded, 504},
		{fmt.Errorf("x: %w", errdefs.ErrUnauthorized), 401},
		{fmt.Errorf("x: %w", errdefs.ErrUnavailable), 503},
		{fmt.Errorf("x: %w", errdefs.ErrCorrupt), 500},
		{errors.New("boom"), 500},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			if got := Status(tc.err); got != tc.want {
				t.Errorf("Status(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestInvokeErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		status   int
		category string
	}{
		{"guest", fmt.Errorf("guest panic: boom at main.go:3: %w", errdefs.ErrGuest), 502, "guest_fault"},
		{"timeout", fmt.Errorf("ran past 2s: %w", errdefs.ErrTimeout), 504, "timeout"},
		{"overloaded", fmt.Errorf("queue full: %w", errdefs.ErrOverloaded), 429, "overloaded"},
		{"internal", errors.New("disk on fire"), 500, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFake()
			fb.invokeErr = tc.err
			ts := newTestServer(t, fb, Options{})
			resp, body := do(t, "GET", ts.URL+"/fn/hello/x", nil, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get(api.HeaderError); got != tc.category {
				t.Errorf("%s = %q, want %q", api.HeaderError, got, tc.category)
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error != tc.err.Error() {
				t.Errorf("body %s: want {\"error\": %q} (%v)", body, tc.err, err)
			}
		})
	}
}

func TestInvokeRequestAndResponse(t *testing.T) {
	fb := newFake()
	fb.resp = &abi.Response{Status: 201, Header: http.Header{
		"X-Custom":      {"a", "b"},
		api.HeaderError: {"spoofed"},
		"Server-Timing": {"fake;dur=1"},
	}, Body: []byte("created")}
	fb.timing = worker.Timing{Queue: 1500 * time.Microsecond, Start: 3 * time.Millisecond, Exec: 250 * time.Microsecond,
		StartKind: "restore", Mode: restore.Reap, Fallback: "line1\nline2", Instantiate: 500 * time.Microsecond,
		Restore: &restore.Stats{Map: time.Millisecond, Prefetch: 2 * time.Millisecond, Faults: 17, WSBytes: 8192, BytesRead: 12288}}
	ts := newTestServer(t, fb, Options{})
	resp, body := do(t, "POST", ts.URL+"/fn/hello/a/b%20c?x=1&y=2", strings.NewReader("payload"), map[string]string{"X-In": "v"})
	if resp.StatusCode != 201 || string(body) != "created" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	req := fb.lastReq
	if req.Method != "POST" || req.Path != "/a/b%20c" || req.RawQuery != "x=1&y=2" || string(req.Body) != "payload" || req.Header.Get("X-In") != "v" {
		t.Errorf("guest request = %+v", req)
	}
	if got := resp.Header.Values("X-Custom"); len(got) != 2 {
		t.Errorf("X-Custom = %q", got)
	}
	if resp.Header.Get(api.HeaderError) != "" {
		t.Errorf("guest could set %s", api.HeaderError)
	}
	if got := resp.Header.Get(api.HeaderStart); got != "restore" {
		t.Errorf("%s = %q", api.HeaderStart, got)
	}
	if got := resp.Header.Get(api.HeaderFallback); got != "line1 line2" {
		t.Errorf("%s = %q", api.HeaderFallback, got)
	}
	ms, err := api.ParseServerTiming(resp.Header.Get(api.HeaderServerTiming))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]api.Metric{
		"queue":       {Name: "queue", Dur: 1.5, HasDur: true},
		"start":       {Name: "start", Dur: 3, HasDur: true, Desc: "restore:reap"},
		"exec":        {Name: "exec", Dur: 0.25, HasDur: true},
		"map":         {Name: "map", Dur: 1, HasDur: true},
		"prefetch":    {Name: "prefetch", Dur: 2, HasDur: true},
		"faults":      {Name: "faults", Desc: "17"},
		"ws":          {Name: "ws", Desc: "8192"},
		"instantiate": {Name: "instantiate", Dur: 0.5, HasDur: true},
		"read":        {Name: "read", Desc: "12288"},
		"snapshot":    {Name: "snapshot", Desc: "local"},
	}
	if len(ms) != len(want) {
		t.Errorf("metrics %+v, want %d", ms, len(want))
	}
	for _, m := range ms {
		if m != want[m.Name] {
			t.Errorf("metric %+v, want %+v", m, want[m.Name])
		}
	}
	// The load generator's view of the same header.
	tm, err := api.ParseTiming(resp.Header.Get(api.HeaderServerTiming))
	wantTiming := api.Timing{QueueMs: 1.5, StartMs: 3, ExecMs: 0.25, StartKind: "restore", RestoreMode: "reap",
		Stages: map[string]float64{"map": 1, "prefetch": 2, "instantiate": 0.5}, Faults: 17, WSBytes: 8192, Snapshot: "local"}
	if err != nil || !reflect.DeepEqual(tm, wantTiming) {
		t.Errorf("timing %+v, %v, want %+v", tm, err, wantTiming)
	}
}

func TestInvokePaths(t *testing.T) {
	for _, tc := range []struct{ url, path string }{
		{"/fn/hello", "/"},
		{"/fn/hello/", "/"},
		{"/fn/hello/x/y/", "/x/y/"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			fb := newFake()
			ts := newTestServer(t, fb, Options{})
			resp, body := do(t, "GET", ts.URL+tc.url, nil, nil)
			if resp.StatusCode != 200 || fb.lastReq.Path != tc.path {
				t.Errorf("status %d body %q path %q, want %q", resp.StatusCode, body, fb.lastReq.Path, tc.path)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb, Options{MaxBody: 10})
	for _, tc := range []struct {
		name   string
		body   io.Reader
		status int
	}{
		{"at limit", strings.NewReader("0123456789"), 200},
		{"content-length over", strings.NewReader("0123456789x"), 413},
		// An io.Reader that is not a strings.Reader is sent chunked, so
		// only the MaxBytesReader can catch it.
		{"chunked over", io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("x")), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, "POST", ts.URL+"/fn/hello/", tc.body, nil)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
}

func TestExperimentHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		status int
		want   worker.InvokeOptions
	}{
		{"mode", map[string]string{api.HeaderMode: "cold"}, 200, worker.InvokeOptions{Mode: restore.Cold}},
		{"warm", map[string]string{api.HeaderMode: "warm"}, 200, worker.InvokeOptions{Mode: restore.Warm}},
		{"drop", map[string]string{api.HeaderMode: "mmap", api.HeaderDropCache: "1"}, 200, worker.InvokeOptions{Mode: restore.Mmap, DropCache: true}},
		{"bad mode", map[string]string{api.HeaderMode: "teleport"}, 400, worker.InvokeOptions{}},
		{"bad drop", map[string]string{api.HeaderDropCache: "yes please"}, 400, worker.InvokeOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFake()
			ts := newTestServer(t, fb, Options{})
			resp, body := do(t, "GET", ts.URL+"/fn/hello/", nil, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 && fb.lastOpts != tc.want {
				t.Errorf("options %+v, want %+v", fb.lastOpts, tc.want)
			}
			if tc.status == 200 && (fb.lastReq.Header.Get(api.HeaderMode) != "" || fb.lastReq.Header.Get(api.HeaderDropCache) != "") {
				t.Errorf("experiment headers reached the guest")
			}
		})
	}
}

func TestAuth(t *testing.T) {
	const tok = "s3cret"
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	wrong := map[string]string{"Authorization": "Bearer nope"}
	mode := map[string]string{api.HeaderMode: "cold"}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		status int
	}{
		{"list without token", "GET", "/v1/functions", nil, 401},
		{"list wrong token", "GET", "/v1/functions", wrong, 401},
		{"list with token", "GET", "/v1/functions", bearer, 200},
		{"get with token", "GET", "/v1/functions/hello", bearer, 200},
		{"delete without token", "DELETE", "/v1/functions/hello", nil, 401},
		{"private without token", "GET", "/fn/hello/", nil, 401},
		{"unknown without token", "GET", "/fn/nosuch/", nil, 401},
		{"unknown with token", "GET", "/fn/nosuch/", bearer, 404},
		{"private with token", "GET", "/fn/hello/", bearer, 200},
		{"public without token", "GET", "/fn/public/", nil, 200},
		{"public experiment without token", "GET", "/fn/public/", mode, 401},
		{"healthz", "GET", "/healthz", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFake()
			ts := newTestServer(t, fb, Options{Token: tok})
			resp, body := do(t, tc.method, ts.URL+tc.path, nil, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	t.Run("token not passed to guest", func(t *testing.T) {
		fb := newFake()
		ts := newTestServer(t, fb, Options{Token: tok})
		do(t, "GET", ts.URL+"/fn/hello/", nil, bearer)
		if fb.lastReq.Header.Get("Authorization") != "" {
			t.Errorf("guest saw the platform token")
		}
	})
}

func TestManagement(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	multipartBody := func(parts map[string]string) (io.Reader, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k, v := range parts {
			w, _ := mw.CreateFormFile(k, k)
			_, _ = w.Write([]byte(v))
		}
		_ = mw.Close()
		return &b, mw.FormDataContentType()
	}
	for _, tc := range []struct {
		name    string
		path    string
		body    func() (io.Reader, string)
		hdr     map[string]string
		status  int
		wantCfg worker.Config
	}{
		{"raw with query", "/v1/functions/f1?memory_mib=64&timeout=2s&public=true&restore_mode=reap&keep_alive=1",
			func() (io.Reader, string) { return bytes.NewReader(wasm), "application/wasm" }, nil, 200,
			worker.Config{MemoryMiB: 64, Timeout: api.Duration(2 * time.Second), Public: true, RestoreMode: api.ModeReap, KeepAlive: api.Duration(time.Second)}},
		{"raw with header", "/v1/functions/f2",
			func() (io.Reader, string) { return bytes.NewReader(wasm), "application/wasm" },
			map[string]string{api.HeaderConfig: `{"max_instances": 2, "max_queue": 1, "timeout": "5s"}`}, 200,
			worker.Config{MaxInstances: 2, MaxQueue: 1, Timeout: api.Duration(5 * time.Second)}},
		{"multipart", "/v1/functions/f3",
			func() (io.Reader, string) {
				return multipartBody(map[string]string{"module": string(wasm), "config": `{"memory_mib": 32}`})
			}, nil, 200, worker.Config{MemoryMiB: 32}},
		{"multipart without module", "/v1/functions/f4",
			func() (io.Reader, string) { return multipartBody(map[string]string{"config": `{}`}) }, nil, 400, worker.Config{}},
		{"unknown config field", "/v1/functions/f5",
			func() (io.Reader, string) { return bytes.NewReader(wasm), "application/wasm" },
			map[string]string{api.HeaderConfig: `{"memory": 32}`}, 400, worker.Config{}},
		{"unknown query", "/v1/functions/f6?bogus=1",
			func() (io.Reader, string) { return bytes.NewReader(wasm), "application/wasm" }, nil, 400, worker.Config{}},
		{"bad name", "/v1/functions/Bad.Name",
			func() (io.Reader, string) { return bytes.NewReader(wasm), "application/wasm" }, nil, 400, worker.Config{}},
		{"not wasm", "/v1/functions/f7",
			func() (io.Reader, string) { return strings.NewReader("hello"), "application/wasm" }, nil, 400, worker.Config{}},
		{"empty", "/v1/functions/f8",
			func() (io.Reader, string) { return strings.NewReader(""), "application/wasm" }, nil, 400, worker.Config{}},
		{"too large", "/v1/functions/f9",
			func() (io.Reader, string) { return bytes.NewReader(make([]byte, 101)), "application/wasm" }, nil, 413, worker.Config{}},
		{"too large multipart", "/v1/functions/f10",
			func() (io.Reader, string) {
				return multipartBody(map[string]string{"module": string(make([]byte, 101))})
			}, nil, 413, worker.Config{}},
		{"wrong type", "/v1/functions/f11",
			func() (io.Reader, string) { return strings.NewReader("{}"), "application/json" }, nil, 400, worker.Config{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFake()
			ts := newTestServer(t, fb, Options{MaxModule: 100})
			body, ct := tc.body()
			hdr := map[string]string{"Content-Type": ct}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			resp, b := do(t, "PUT", ts.URL+tc.path, body, hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.status != 200 {
				var eb api.ErrorBody
				if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
					t.Errorf("error body %q is not {\"error\": ...}", b)
				}
				return
			}
			if fb.lastCfg != tc.wantCfg {
				t.Errorf("config %+v, want %+v", fb.lastCfg, tc.wantCfg)
			}
			var info api.FunctionInfo
			if err := json.Unmarshal(b, &info); err != nil || info.ModuleSize != len(wasm) || info.Config != api.Config(tc.wantCfg) {
				t.Errorf("info %s (%v)", b, err)
			}
		})
	}
}

func TestClient(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb, Options{Token: "t"})
	ctx := context.Background()
	c := &api.Client{BaseURL: ts.URL, Token: "t"}
	if _, err := c.Deploy(ctx, "new", []byte("\x00asm\x01\x00\x00\x00"), api.Config{MemoryMiB: 8}); err != nil {
		t.Fatal(err)
	}
	if fb.lastCfg.MemoryMiB != 8 {
		t.Errorf("config not sent: %+v", fb.lastCfg)
	}
	fns, err := c.List(ctx)
	if err != nil || len(fns) != 3 {
		t.Fatalf("list = %v, %v", fns, err)
	}
	if _, err := c.Get(ctx, "nosuch"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get unknown: %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deploy(ctx, "bad", []byte("nope"), api.Config{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("deploy junk: %v, want ErrInvalid", err)
	}
	res, err := c.Invoke(ctx, "hello", &api.InvokeRequest{Path: "/p?q=1", Mode: api.ModeEager})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || string(res.Body) != "hi /p" || res.Start != "warm" || fb.lastOpts.Mode != restore.Eager || fb.lastReq.RawQuery != "q=1" {
		t.Errorf("invoke = %+v, opts %+v", res, fb.lastOpts)
	}
	if m, ok := res.Metric("start"); !ok || m.Dur != 2 {
		t.Errorf("start metric = %+v", m)
	}
	fb.invokeErr = fmt.Errorf("trap: %w", errdefs.ErrGuest)
	if _, err := c.Invoke(ctx, "hello", &api.InvokeRequest{}); !errors.Is(err, errdefs.ErrGuest) {
		t.Errorf("invoke trap: %v, want ErrGuest", err)
	}
	// A function answering 404 itself is a response, not an error.
	fb.invokeErr = nil
	fb.resp = &abi.Response{Status: 404, Body: []byte("no such item")}
	if res, err := c.Invoke(ctx, "hello", &api.InvokeRequest{}); err != nil || res.Status != 404 {
		t.Errorf("guest 404: %+v, %v", res, err)
	}
	anon := &api.Client{BaseURL: ts.URL}
	if _, err := anon.List(ctx); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("anonymous list: %v, want ErrUnauthorized", err)
	}
}

func TestServerTimingKinds(t *testing.T) {
	for _, tc := range []struct {
		t    worker.Timing
		want string
	}{
		{worker.Timing{StartKind: "warm"}, "warm"},
		{worker.Timing{StartKind: "cold", Init: time.Millisecond}, "cold"},
		{worker.Timing{StartKind: "restore", Mode: restore.Bulk, Restore: &restore.Stats{}}, "restore:bulk"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			ms, err := api.ParseServerTiming(ServerTiming(tc.t))
			if err != nil {
				t.Fatal(err)
			}
			if ms[1].Name != "start" || ms[1].Desc != tc.want {
				t.Errorf("start metric %+v, want desc %q", ms[1], tc.want)
			}
		})
	}
}

// Server-Timing says where the instance came from, and in a cluster which
// worker served and why; api.ParseTiming reads them back.
func TestServerTimingNamesWorkerAndSnapshot(t *testing.T) {
	for _, tc := range []struct {
		t                   worker.Timing
		snapshot, worker, p string
	}{
		{worker.Timing{StartKind: "warm"}, "warm", "", ""},
		{worker.Timing{StartKind: "cold", Worker: "a", Placement: "home"}, "cold", "a", "home"},
		{worker.Timing{StartKind: "restore", Mode: restore.Bulk, Restore: &restore.Stats{}, Source: worker.SourceStore, Worker: "b", Placement: "peer-cached"}, "store-cache", "b", "peer-cached"},
		{worker.Timing{StartKind: "restore", Mode: restore.Eager, Restore: &restore.Stats{Store: store.TierBytes{Cache: 10, Peer: 30, Remote: 20}}, Source: worker.SourceStore}, "store-peer", "", ""},
		{worker.Timing{StartKind: "restore", Mode: restore.Lazy, Restore: &restore.Stats{Store: store.TierBytes{Cache: 5, Remote: 20}}, Source: worker.SourceStore}, "store-remote", "", ""},
		{worker.Timing{StartKind: "restore", Mode: restore.Eager, Restore: &restore.Stats{Store: store.TierBytes{Cache: 20, Remote: 20}}, Source: worker.SourceStore}, "store-cache", "", ""},
		{worker.Timing{StartKind: "restore", Mode: restore.Bulk, Restore: &restore.Stats{}, Source: worker.SourceLocal}, "local", "", ""},
	} {
		h := ServerTiming(tc.t)
		got, err := api.ParseTiming(h)
		if err != nil {
			t.Fatal(err)
		}
		if got.Snapshot != tc.snapshot || got.Worker != tc.worker || got.Placement != tc.p || got.StartKind != tc.t.StartKind {
			t.Errorf("%q parses as %+v, want snapshot %q, worker %q, placement %q", h, got, tc.snapshot, tc.worker, tc.p)
		}
		if r := tc.t.Restore; r != nil && (got.StoreBytes["cache"] != r.Store.Cache || got.StoreBytes["peer"] != r.Store.Peer ||
			got.StoreBytes["remote"] != r.Store.Remote || (r.Store.Total() == 0) != (got.StoreBytes == nil)) {
			t.Errorf("%q: store bytes %v, want %+v", h, got.StoreBytes, r.Store)
		}
	}
}
