// Package testwasm builds the repository's functions (Go, and JavaScript
// through internal/build) into wasm modules for tests, once per test
// process.
package testwasm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/thaw-run/thaw/internal/build"
)

var (
	mu    sync.Mutex
	built = map[string][]byte{}
	dir   string
)

// Root returns the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Build compiles the function at pkg (a path relative to the repository
// root, e.g. "examples/hello") with GOOS=wasip1 -buildmode=c-shared and
// returns the module: a Go package, or a directory holding a JavaScript
// function's handler.js (build.Module's JS path). It fails the test if the
// Go toolchain fails.
func Build(t testing.TB, pkg string) []byte {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if b, ok := built[pkg]; ok {
		return b
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "thaw-testwasm-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, strings.ReplaceAll(pkg, "/", "_")+".wasm")
	if build.JSScript(filepath.Join(Root(), pkg)) != "" {
		// A JavaScript function: built as thaw build builds it, the one
		// Go program that runs a handler.js.
		if err := build.Module(context.Background(), filepath.Join(Root(), pkg), out); err != nil {
			t.Fatalf("build %s: %v", pkg, err)
		}
	} else {
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./"+pkg)
		cmd.Dir = Root()
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, msg)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	built[pkg] = b
	return b
}

// Offline makes the go command, for the rest of the test, run as on a
// machine that never fetched a Go module, as a newcomer's does: a fresh
// user cache directory (returned; $XDG_CACHE_HOME, and $HOME for
// os.UserCacheDir's fallback), an empty module cache, no module proxy, no
// workspace, the local toolchain only. The build cache stays, for speed:
// it holds compiled packages, not modules. Not for parallel tests
// (t.Setenv).
func Offline(t *testing.T) string {
	t.Helper()
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Skipf("no Go toolchain: %v", err)
	}
	cache := t.TempDir()
	for k, v := range map[string]string{
		"GOCACHE": strings.TrimSpace(string(gocache)), "XDG_CACHE_HOME": cache, "HOME": t.TempDir(),
		"GOMODCACHE": t.TempDir(), "GOPROXY": "off", "GOFLAGS": "-mod=readonly", "GOWORK": "off", "GOTOOLCHAIN": "local",
	} {
		t.Setenv(k, v)
	}
	return cache
}
