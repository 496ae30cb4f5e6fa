package build

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// JSModule is the module path of the JavaScript runtime (sdk/js), which
// this binary carries like the Go SDK.
const JSModule = "github.com/thaw-run/thaw/sdk/js"

// JSHandler is the file a JavaScript function's directory holds.
const JSHandler = "handler.js"

// JSScript returns the JavaScript handler that path names, or "" when
// path is a Go function: path itself if it is a .js file, else
// path/handler.js if the directory holds one and no go.mod.
func JSScript(path string) string {
	if st, err := os.Stat(path); err == nil && !st.IsDir() && strings.HasSuffix(path, ".js") {
		return path
	}
	if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
		return ""
	}
	if st, err := os.Stat(filepath.Join(path, JSHandler)); err == nil && !st.IsDir() {
		return filepath.Join(path, JSHandler)
	}
	return ""
}

// jsMain is the Go program that runs a JavaScript function: the script,
// embedded, loaded by the runtime at the module's initialisation (so the
// snapshot holds the initialised program) and registered as the handler.
const jsMain = `// Command fn runs handler.js, written by thaw build.
package main

import (
	_ "embed"

	thaw "` + SDKModule + `"
	thawjs "` + JSModule + `"
)

//go:embed handler.js
var script string

func init() { thaw.Handle(thawjs.MustLoad(%q, script)) }

func main() {}
`

// moduleJS compiles the JavaScript handler script to the wasm module out:
// it writes, in a temporary directory, a Go program that embeds the
// script and links the runtime and the SDK (both installed in the cache
// from the copies this binary carries), and builds it as a Go function.
// The runtime's dependencies (goja) come from the Go module cache or the
// module proxy, as any Go module's do; when neither answers, the error is
// errdefs.ErrUnavailable and says what to do (jsModulesHint).
func moduleJS(ctx context.Context, gotool, script, out string) error {
	src, err := os.ReadFile(script)
	if err != nil {
		return fmt.Errorf("build %s: %v: %w", script, err, errdefs.ErrNotFound)
	}
	sdk, err := goSDK.install()
	if err != nil {
		return err
	}
	rt, err := jsRuntime.install()
	if err != nil {
		return err
	}
	gomod, err := jsGoMod(rt, sdk)
	if err != nil {
		return err
	}
	gosum, err := fs.ReadFile(jsRuntime.fsys, "go.sum")
	if err != nil {
		return fmt.Errorf("the JavaScript runtime's go.sum: %w", err)
	}
	dir, err := os.MkdirTemp("", "thaw-js-")
	if err != nil {
		return fmt.Errorf("build %s: %w", script, err)
	}
	defer os.RemoveAll(dir)
	for name, body := range map[string][]byte{
		"go.mod":  gomod,
		"go.sum":  gosum,
		"main.go": fmt.Appendf(nil, jsMain, filepath.Base(script)),
		JSHandler: src,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return fmt.Errorf("build %s: %w", script, err)
		}
	}
	// The program is this package's, not the user's: go.work and a
	// -mod=vendor in GOFLAGS, which are about the user's own modules,
	// must not apply to it.
	err = goBuild(ctx, gotool, dir, out, []string{"-mod=readonly"}, []string{"GOWORK=off"})
	var gf *goFailure
	if errors.As(err, &gf) {
		// The script is embedded as a string, so a failing go build is
		// never the script's fault: most likely the runtime's modules
		// could not be had.
		return fmt.Errorf("build %s: %s\n%s: %w", script, strings.TrimSpace(gf.output), jsModulesHint(rt), errdefs.ErrUnavailable)
	}
	if err != nil {
		return fmt.Errorf("build %s: %w", script, err)
	}
	return nil
}

// jsModulesHint says where the JavaScript runtime's dependencies (goja and
// what it needs) come from and what to do when neither source answers.
func jsModulesHint(rt string) string {
	return `the JavaScript runtime needs goja and its dependencies, Go modules (listed in ` + filepath.Join(rt, "go.mod") + `),
from the Go module cache ($GOMODCACHE) or a module proxy ($GOPROXY), and this build could have them from neither. Either
  - let the go command reach a module proxy (GOPROXY's default, https://proxy.golang.org, or your own), or
  - on a machine that can, run thaw build once on any handler.js (that fills its module cache), then copy that
    module cache ($(go env GOMODCACHE)) to this machine's`
}

// jsGoMod returns the go.mod of the program moduleJS writes: the
// runtime's own go.mod (its go version and requirements) under another
// module path, requiring the runtime and the SDK from their installed
// copies.
func jsGoMod(rt, sdk string) ([]byte, error) {
	b, err := fs.ReadFile(jsRuntime.fsys, "go.mod")
	if err != nil {
		return nil, fmt.Errorf("the JavaScript runtime's go.mod: %w", err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "module ") {
			line = "module fn"
		}
		out.WriteString(line + "\n")
	}
	fmt.Fprintf(&out, "\nrequire (\n\t%s v0.0.0\n\t%s v0.0.0\n)\n\nreplace %[1]s => %[3]s\n\nreplace %[2]s => %[4]s\n",
		SDKModule, JSModule, GoModPath(sdk), GoModPath(rt))
	return out.Bytes(), nil
}
