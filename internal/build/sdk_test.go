// An external test package: testwasm, which it uses, builds JavaScript
// functions with this package.
package build_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

func TestInstallSDK(t *testing.T) {
	cache := testwasm.Offline(t)
	dir, err := build.InstallSDK()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, filepath.Join(cache, "thaw", "sdk", "go")+string(filepath.Separator)) {
		t.Errorf("SDK installed in %s, want under %s/thaw/sdk/go", dir, cache)
	}
	for _, f := range []string{"go.mod", "thaw.go", "serve.go", "wire/wire.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("installed SDK lacks %s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); !strings.HasPrefix(string(b), "module "+build.SDKModule+"\n") {
		t.Errorf("installed go.mod = %q", b)
	}
	// Installing again keeps the directory and leaves no temporary one.
	again, err := build.InstallSDK()
	if err != nil || again != dir {
		t.Fatalf("second install = %s, %v; want %s", again, err, dir)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want the SDK only", filepath.Dir(dir), len(entries))
	}
}

// A function whose go.mod points at this binary's SDK builds with no
// network, and builds again after the user cleared the cache.
func TestModuleSuppliesSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go toolchain")
	}
	testwasm.Offline(t)
	sdk, err := build.SDKDir()
	if err != nil {
		t.Fatal(err)
	}
	fn := t.TempDir()
	files := map[string]string{
		"go.mod": "module fn\n\ngo 1.24\n\nrequire " + build.SDKModule + " v0.0.0\n\nreplace " + build.SDKModule + " => " + sdk + "\n",
		"main.go": "package main\n\nimport (\n\t\"net/http\"\n\n\tthaw \"" + build.SDKModule + "\"\n)\n\n" +
			"func init() { thaw.Handle(http.NotFoundHandler()) }\n\nfunc main() {}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(fn, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(sdk); !os.IsNotExist(err) {
		t.Fatalf("the fresh cache already holds %s (%v)", sdk, err)
	}
	out := filepath.Join(t.TempDir(), "fn.wasm")
	if err := build.Module(context.Background(), fn, out); err != nil {
		t.Fatalf("build with the SDK missing from the cache: %v", err)
	}
	if _, err := os.Stat(filepath.Join(sdk, "go.mod")); err != nil {
		t.Errorf("the build did not install the SDK: %v", err)
	}
	// A go.mod pointing elsewhere is the go command's business.
	if err := os.WriteFile(filepath.Join(fn, "go.mod"), []byte(strings.ReplaceAll(files["go.mod"], sdk, sdk+"-gone")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := build.Module(context.Background(), fn, out); err == nil || !strings.Contains(err.Error(), "-gone") {
		t.Errorf("build with a missing replacement = %v, want the go command's error naming it", err)
	}
}

// A JavaScript function's runtime needs goja from the module cache or a
// proxy. With neither, the build fails as unavailable and says what to do;
// from a warm module cache it builds with the proxy off, whatever go.work
// or -mod the user's environment sets for their own modules.
func TestModuleJSModules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go toolchain")
	}
	mods, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	testwasm.Offline(t) // no proxy, an empty module cache
	fn := t.TempDir()
	if err := os.WriteFile(filepath.Join(fn, build.JSHandler), []byte(`export default { async fetch() { return new Response("hi") } };`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "fn.wasm")
	err = build.Module(context.Background(), fn, out)
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("build with no module cache and no proxy = %v, want ErrUnavailable", err)
	}
	for _, want := range []string{"github.com/dop251/goja", "GOPROXY=off", "$GOMODCACHE", "module proxy", "run thaw build once"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	t.Setenv("GOMODCACHE", strings.TrimSpace(string(mods)))
	t.Setenv("GOFLAGS", "-mod=vendor")
	t.Setenv("GOWORK", filepath.Join(t.TempDir(), "missing.work"))
	if err := build.Module(context.Background(), fn, out); err != nil {
		t.Fatalf("build from a warm module cache: %v", err)
	}
}
