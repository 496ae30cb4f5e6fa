// Package scaffold writes a new function's directory: what `thaw new` does.
//
// A JavaScript function is handler.js and its test, handler.test.mjs
// (Node's test runner: `node --test`), copied from one of the JavaScript
// examples (examples/js), plus a package.json that makes handler.js an ES
// module for Node; `thaw build` does the rest.
//
// A Go function starts as a copy of one of the repository's examples (the
// templates, embedded by package examples), plus a go.mod that takes the
// SDK from the copy the thaw binary carries (build.InstallSDK) instead of
// a module proxy, which does not serve it. The directory then builds,
// tests and deploys with no network: `go test ./...`, `thaw build .`,
// `thaw deploy NAME NAME.wasm`.
package scaffold

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/thaw-run/thaw/examples"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/worker"
	thaw "github.com/thaw-run/thaw/sdk/go"
)

// Template is a starting point for a new function.
type Template struct {
	// Name is what --template takes.
	Name string
	// Lang is the template's language: "go" or "js".
	Lang string
	// Summary says in a few words what the function does.
	Summary string
	// Try is an example of `thaw invoke NAME`'s further arguments that
	// shows the function answering.
	Try string
	// dir is the example's directory in examples.Templates.
	dir string
}

// templates are the templates, each language's default first among its
// own.
var templates = []Template{
	{Name: "hello", Lang: "go", Summary: "greets ?name= in plain text", Try: `'/?name=thaw'`, dir: "hello"},
	{Name: "http-json", Lang: "go", Summary: "a JSON API: routes, request decoding, JSON errors", Try: `/stats -d '{"numbers":[1,2,3]}'`, dir: "httpjson"},
	{Name: "hello", Lang: "js", Summary: "greets ?name= in plain text", Try: `'/?name=thaw'`, dir: "js/hello"},
	{Name: "http-json", Lang: "js", Summary: "a JSON API: routes, request decoding, JSON errors", Try: `/stats -d '{"numbers":[1,2,3]}'`, dir: "js/js_json"},
	{Name: "template", Lang: "js", Summary: "renders an HTML template (compiled once, cached)", Try: `'/?title=thaw&items=a,b'`, dir: "js/js_html"},
}

// Templates returns the templates `thaw new` offers for lang ("go" or
// "js"), the default first.
func Templates(lang string) []Template {
	var out []Template
	for _, t := range templates {
		if t.Lang == lang {
			out = append(out, t)
		}
	}
	return out
}

// Options are `thaw new`'s choices. The zero value is a Go function from
// the hello template.
type Options struct {
	// Lang is the function's language: "go" (or empty) or "js" (or
	// "javascript").
	Lang string
	// Template names one of the language's Templates (empty: the first).
	Template string
}

// Result is what New wrote.
type Result struct {
	// Dir is the function's directory and Name its base name, which is the
	// Go module path and the name to deploy it under.
	Dir, Name string
	// Template is the template used.
	Template Template
	// Files are the files written, relative to Dir, sorted.
	Files []string
	// SDKDir is the SDK copy that go.mod points at; empty for JavaScript,
	// which `thaw build` gives the runtime.
	SDKDir string
}

// New writes a function's directory at dir, which must not exist or be
// empty; its base name must be a valid function name (worker.ValidName).
// Invalid options and an occupied dir are errdefs.ErrInvalid. On failure
// it removes what it wrote.
func New(dir string, opts Options) (res *Result, err error) {
	tmpl, err := pick(opts)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("new %s: %w", dir, err)
	}
	name := filepath.Base(abs)
	if err := worker.ValidName(name); err != nil {
		return nil, fmt.Errorf("new %s: the directory's name is the function's: %w", dir, err)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("new %s: the directory exists and is not empty: %w", dir, errdefs.ErrInvalid)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("new %s: %v: %w", dir, err, errdefs.ErrInvalid)
	}
	var sdk string
	if tmpl.Lang == "go" {
		if sdk, err = build.InstallSDK(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("new %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	files, err := render(name, tmpl, sdk)
	if err != nil {
		return nil, err
	}
	res = &Result{Dir: dir, Name: name, Template: tmpl, SDKDir: sdk}
	for path, body := range files {
		if err := os.WriteFile(filepath.Join(dir, path), body, 0o644); err != nil {
			return nil, fmt.Errorf("new %s: %w", dir, err)
		}
		res.Files = append(res.Files, path)
	}
	slices.Sort(res.Files)
	return res, nil
}

// pick validates opts and returns the template they name.
func pick(opts Options) (Template, error) {
	lang := opts.Lang
	switch lang {
	case "", "go":
		lang = "go"
	case "js", "javascript":
		lang = "js"
	default:
		return Template{}, fmt.Errorf("language %q: thaw builds Go and JavaScript functions (--lang go or js): %w", opts.Lang, errdefs.ErrInvalid)
	}
	ts := Templates(lang)
	if opts.Template == "" {
		return ts[0], nil
	}
	var names []string
	for _, t := range ts {
		if t.Name == opts.Template {
			return t, nil
		}
		names = append(names, t.Name)
	}
	return Template{}, fmt.Errorf("template %q: want one of %s: %w", opts.Template, strings.Join(names, ", "), errdefs.ErrInvalid)
}

// render returns the function's files: the template's, with main.go's
// "Command DIR" doc comment naming the function instead, a go.mod (for
// Go) and a .gitignore for the built module.
func render(name string, t Template, sdk string) (map[string][]byte, error) {
	src, err := fs.Sub(examples.Templates, t.dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	err = fs.WalkDir(src, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(src, path)
		if path == "main.go" {
			b = bytes.Replace(b, []byte("// Command "+t.dir+" "), []byte("// Command "+name+" "), 1)
		}
		files[path] = b
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", t.Name, err)
	}
	files[".gitignore"] = []byte("# thaw build's output\n*.wasm\n")
	if t.Lang == "js" {
		files["package.json"] = fmt.Appendf(nil, jsPackage, name)
		return files, nil
	}
	goVersion, err := sdkGoVersion()
	if err != nil {
		return nil, err
	}
	files["go.mod"] = fmt.Appendf(nil, `module %s

go %s

require %s v0.0.0

// No public module proxy serves the SDK: this is the copy the thaw binary
// carries, written to its cache by `+"`thaw new`"+` (and by `+"`thaw build`"+` again
// if the cache is cleared).
replace %[3]s => %s
`, name, goVersion, build.SDKModule, build.GoModPath(sdk))
	return files, nil
}

// jsPackage is a JavaScript function's package.json: it makes handler.js
// an ES module for Node (thaw's runtime takes it as one anyway), so that
// handler.test.mjs can import it and `npm test` or `node --test` run it.
// Node is needed for the test only; thaw build does not read this file.
const jsPackage = `{
  "name": %q,
  "private": true,
  "type": "module",
  "scripts": {
    "test": "node --test"
  }
}
`

// sdkGoVersion is the go directive of the SDK's go.mod: the function
// needs the same toolchain, no newer.
func sdkGoVersion() (string, error) {
	b, err := fs.ReadFile(thaw.SourceFS, "go.mod")
	if err != nil {
		return "", fmt.Errorf("the Go SDK's go.mod: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("the Go SDK's go.mod has no go directive: %w", errdefs.ErrCorrupt)
}
