package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/api"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// A build without cgo (CGO_ENABLED=0) builds, serves with wazero (its
// default, where a build with cgo defaults to wasmtime) and says so; asked
// for wasmtime, at start or in a function's config, it refuses
// with an error that names the reason.
func TestWithoutCgo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "thaw-nocgo")
	build := exec.Command("go", "build", "-o", bin, "./cmd/thaw")
	build.Dir = testwasm.Root()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	help, err := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), `(default "wazero")`) {
		t.Fatalf("serve --help without cgo does not name wazero the default engine: %v\n%s", err, help)
	}
	refused := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--engine", "wasmtime")
	out, err := refused.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "not in this build") {
		t.Fatalf("serve --engine wasmtime without cgo: %v\n%s", err, out)
	}

	p := startServeBin(t, bin, t.TempDir(), token)
	defer p.Stop()
	if !strings.Contains(p.Log(), "built without cgo") {
		t.Errorf("the server did not say it was built without cgo:\n%s", p.Log())
	}
	deploy(t, p, "hello", "examples/hello", api.Config{RestoreMode: api.ModeEager})
	res := invoke(t, p, "hello", &api.InvokeRequest{Path: "/?name=nocgo"})
	if string(res.Body) != "hello, nocgo (GET /)\n" {
		t.Fatalf("answered %q", res.Body)
	}
	wasm, _ := module(t, "examples/hello")
	_, err = client(p, token).Deploy(context.Background(), "hello2", wasm, api.Config{Engine: "wasmtime"})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "not in this build") {
		t.Fatalf("deploy with engine wasmtime without cgo: %v", err)
	}
}

// One worker runs a function on each engine, chosen per function: both
// answer alike, cold and restored from their snapshots. The binary (built
// with cgo) names wasmtime its default.
func TestEnginePerFunction(t *testing.T) {
	help, err := exec.Command(thawBin, "serve", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), `(default "wasmtime")`) {
		t.Fatalf("serve --help does not name wasmtime the default engine: %v\n%s", err, help)
	}
	p := shared(t)
	for _, eng := range []string{"wazero", "wasmtime"} {
		name := "hello-" + eng
		deploy(t, p, name, "examples/hello", api.Config{Engine: eng, RestoreMode: api.ModeBulk})
		for _, mode := range []api.Mode{api.ModeCold, api.ModeBulk, api.ModeLazy} {
			res := invoke(t, p, name, &api.InvokeRequest{Path: "/?name=" + eng, Mode: mode})
			if want := "hello, " + eng + " (GET /)\n"; string(res.Body) != want {
				t.Errorf("%s, %s: %q, want %q", eng, mode, res.Body, want)
			}
		}
	}
}
