package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/pager"
	"github.com/thaw-run/thaw/internal/server"
	"github.com/thaw-run/thaw/internal/store/stack"
	"github.com/thaw-run/thaw/internal/worker"
)

// TestMain lets the test binary serve as the pager process: the worker
// starts it by running its own executable.
func TestMain(m *testing.M) {
	pager.RunIfChild(stack.OpenReaderJSON)
	os.Exit(m.Run())
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("x"), ExitFailure},
		{fmt.Errorf("a: %w", errdefs.ErrInvalid), ExitUsage},
		{fmt.Errorf("a: %w", errdefs.ErrNotFound), ExitNotFound},
		{fmt.Errorf("a: %w", errdefs.ErrUnauthorized), ExitUnauthorized},
		{fmt.Errorf("a: %w", errdefs.ErrTooLarge), ExitTooLarge},
		{fmt.Errorf("a: %w", errdefs.ErrOverloaded), ExitOverloaded},
		{fmt.Errorf("a: %w", errdefs.ErrTimeout), ExitTimeout},
		{context.DeadlineExceeded, ExitTimeout},
		{fmt.Errorf("a: %w", errdefs.ErrGuest), ExitGuest},
		{fmt.Errorf("a: %w", errdefs.ErrUnavailable), ExitUnavailable},
		{fmt.Errorf("a: %w", errdefs.ErrCorrupt), ExitCorrupt},
		{&api.Error{Status: 404, Category: "not_found"}, ExitNotFound},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			if got := ExitCode(tc.err); got != tc.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "127.0.0.2:9": true,
		":8080": false, "0.0.0.0:8080": false, "10.0.0.1:80": false, "[::]:80": false, "example.com:80": false, "nonsense": false,
	} {
		t.Run(addr, func(t *testing.T) {
			if got := isLoopback(addr); got != want {
				t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
			}
		})
	}
}

// run calls Main and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"ls", "--nope"}, ExitUsage},
		{"too many args", []string{"rm", "a", "b"}, ExitUsage},
		{"missing args", []string{"deploy", "x"}, ExitUsage},
		{"bad mode", []string{"invoke", "x", "--mode", "teleport"}, ExitUsage},
		{"bad header", []string{"invoke", "x", "-H", "novalue"}, ExitUsage},
		{"missing module file", []string{"deploy", "x", "/nonexistent/x.wasm"}, ExitNotFound},
		{"public listen without token", []string{"serve", "--addr", "0.0.0.0:0", "--token", ""}, ExitUsage},
		{"unknown placement", []string{"serve", "--addr", "127.0.0.1:0", "--placement", "nearest"}, ExitUsage},
		{"gateway: unknown placement", []string{"gateway", "--placement", "nearest"}, ExitUsage},
		{"gateway: no hold", []string{"gateway", "--placement-hold", "0s"}, ExitUsage},
		{"gateway: public listen without token", []string{"gateway", "--addr", "0.0.0.0:0", "--token", ""}, ExitUsage},
		{"server down", []string{"ls", "--server", "http://127.0.0.1:1"}, ExitUnavailable},
		{"help", []string{"--help"}, ExitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			if code != tc.want {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.want, stderr)
			}
		})
	}
}

// fakeBackend is a minimal in-memory worker for CLI tests.
type fakeBackend struct {
	mu   sync.Mutex
	fns  map[string]*worker.Info
	last *abi.Request
	opts worker.InvokeOptions
}

func (f *fakeBackend) Deploy(_ context.Context, name string, wasm []byte, cfg worker.Config) (*worker.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return nil, fmt.Errorf("not a wasm module: %w", errdefs.ErrInvalid)
	}
	f.fns[name] = &worker.Info{Name: name, Config: cfg.WithDefaults(), ModuleSize: len(wasm)}
	return f.fns[name], nil
}

func (f *fakeBackend) Get(name string) (*worker.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i, ok := f.fns[name]; ok {
		return i, nil
	}
	return nil, fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
}

func (f *fakeBackend) Public(name string) bool {
	i, err := f.Get(name)
	return err == nil && i.Config.Public
}

func (f *fakeBackend) Admit(name string) error {
	_, err := f.Get(name)
	return err
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
	if _, err := f.Get(name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.fns, name)
	return nil
}

func (f *fakeBackend) Invoke(_ context.Context, name string, req *abi.Request, opts worker.InvokeOptions) (*worker.Result, error) {
	if _, err := f.Get(name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last, f.opts = req, opts
	status := 200
	if req.Path == "/missing" {
		status = 404
	}
	if req.Path == "/trap" {
		return nil, fmt.Errorf("wasm trap: unreachable: %w", errdefs.ErrGuest)
	}
	return &worker.Result{Response: &abi.Response{Status: status, Body: []byte(req.Method + " " + req.Path + " " + string(req.Body))},
		Timing: worker.Timing{StartKind: "warm"}}, nil
}

func TestCommandsAgainstServer(t *testing.T) {
	fb := &fakeBackend{fns: map[string]*worker.Info{}}
	ts := httptest.NewServer(server.New(fb, server.Options{Token: "tok", Logger: slog.New(slog.DiscardHandler)}))
	defer ts.Close()
	dir := t.TempDir()
	mod := filepath.Join(dir, "fn.wasm")
	body := filepath.Join(dir, "body.json")
	if err := os.WriteFile(mod, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(body, []byte(`{"a":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.wasm")
	if err := os.WriteFile(junk, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := []string{"--server", ts.URL, "--token", "tok"}
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		wantStdout string
	}{
		{"deploy", append([]string{"deploy", "fn", mod, "--memory-mib", "64", "--timeout", "2s", "--mode", "reap", "--public"}, g...), 0, "deployed fn"},
		{"deploy junk", append([]string{"deploy", "bad", junk}, g...), ExitUsage, ""},
		{"ls", append([]string{"ls"}, g...), 0, "reap  64 MiB"},
		{"ls json", append([]string{"ls", "--json"}, g...), 0, `"memory_mib": 64`},
		{"ls without token", []string{"ls", "--server", ts.URL, "--token", ""}, ExitUnauthorized, ""},
		{"invoke", append([]string{"invoke", "fn", "/p?x=1"}, g...), 0, "GET /p "},
		{"invoke data", append([]string{"invoke", "fn", "/p", "-d", "hi"}, g...), 0, "POST /p hi"},
		{"invoke data file", append([]string{"invoke", "fn", "-X", "put", "--data", "@" + body}, g...), 0, `PUT / {"a":1}`},
		{"invoke public without token", []string{"invoke", "fn", "--server", ts.URL, "--token", ""}, 0, "GET /"},
		{"invoke guest 404", append([]string{"invoke", "fn", "/missing"}, g...), ExitFailure, "GET /missing"},
		{"invoke trap", append([]string{"invoke", "fn", "/trap"}, g...), ExitGuest, ""},
		{"invoke unknown", append([]string{"invoke", "nosuch"}, g...), ExitNotFound, ""},
		{"rm", append([]string{"rm", "fn"}, g...), 0, ""},
		{"rm again", append([]string{"rm", "fn"}, g...), ExitNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tc.wantStdout)
			}
		})
	}
	t.Run("invoke verbose and mode", func(t *testing.T) {
		fb.Deploy(context.Background(), "fn", []byte("\x00asm"), worker.Config{})
		code, _, stderr := run(t, append([]string{"invoke", "fn", "-v", "--mode", "cold", "--drop-cache", "-H", "X-A: b"}, g...)...)
		if code != 0 || !strings.Contains(stderr, "start:") || !strings.Contains(stderr, "exec") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if fb.opts.Mode != "cold" || !fb.opts.DropCache || fb.last.Header.Get("X-A") != "b" {
			t.Errorf("options %+v header %v", fb.opts, fb.last.Header)
		}
	})
}

func TestFindRepoRoot(t *testing.T) {
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "cli", "demo.go")); err != nil {
		t.Errorf("root %s does not hold internal/cli/demo.go: %v", root, err)
	}
}
