package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// JSScript takes a .js file, or a directory with handler.js and no
// go.mod; anything else is a Go function.
func TestJSScript(t *testing.T) {
	js, gofn, both := t.TempDir(), t.TempDir(), t.TempDir()
	for path, body := range map[string]string{
		filepath.Join(js, JSHandler):     "export default {}",
		filepath.Join(js, "other.js"):    "",
		filepath.Join(gofn, "main.go"):   "package main",
		filepath.Join(both, JSHandler):   "",
		filepath.Join(both, "go.mod"):    "module x",
		filepath.Join(js, "notjs.txt"):   "",
		filepath.Join(gofn, "go.mod"):    "module y",
		filepath.Join(gofn, "script.js"): "",
	} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{
		js:                               filepath.Join(js, JSHandler),
		filepath.Join(js, "other.js"):    filepath.Join(js, "other.js"),
		filepath.Join(js, "notjs.txt"):   "",
		gofn:                             "",
		both:                             "",
		filepath.Join(gofn, "script.js"): filepath.Join(gofn, "script.js"),
		filepath.Join(js, "missing.js"):  "",
	} {
		if got := JSScript(path); got != want {
			t.Errorf("JSScript(%s) = %q, want %q", path, got, want)
		}
	}
	if got := DefaultOutput(filepath.Join(js, JSHandler)); got != filepath.Base(js)+".wasm" {
		t.Errorf("DefaultOutput of a script = %s, want its directory's name", got)
	}
}

// The generated program's go.mod is the runtime's, renamed, with the SDK
// and the runtime taken from the given directories.
func TestJSGoMod(t *testing.T) {
	b, err := jsGoMod("/c/js dir", "/c/go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"module fn\n", "\ngo 1.", "github.com/dop251/goja v", "\t" + SDKModule + " v0.0.0\n",
		"replace " + SDKModule + " => /c/go\n", "replace " + JSModule + ` => "/c/js dir"` + "\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("go.mod lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "module "+JSModule) {
		t.Errorf("go.mod keeps the runtime's module path:\n%s", s)
	}
}
