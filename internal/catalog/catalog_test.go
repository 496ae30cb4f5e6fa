package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func TestCatalog(t *testing.T) {
	root, err := Root(".")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range All() {
		t.Run(f.Name, func(t *testing.T) {
			if names[f.Name] || dirs[f.Dir] {
				t.Errorf("duplicate name or directory")
			}
			names[f.Name], dirs[f.Dir] = true, true
			// A Go function's main.go, or a JavaScript function's handler.js.
			_, goErr := os.Stat(filepath.Join(f.Path(root), "main.go"))
			_, jsErr := os.Stat(filepath.Join(f.Path(root), "handler.js"))
			if goErr != nil && jsErr != nil {
				t.Errorf("neither main.go nor handler.js: %v", goErr)
			}
			if f.Request.Method != "GET" && f.Request.Method != "POST" || !strings.HasPrefix(f.Request.Target, "/") {
				t.Errorf("bad default request %+v", f.Request)
			}
			if f.Description == "" || f.Origin == "" || f.MemoryMiB <= 0 {
				t.Errorf("incomplete entry %+v", f)
			}
			if k := f.Kind; k != Suite && k != Warmup && k != Example {
				t.Errorf("kind %q", k)
			}
			if got, err := Lookup(f.Name); err != nil || got.Dir != f.Dir {
				t.Errorf("Lookup = %+v, %v", got, err)
			}
		})
	}
	// Every function directory in the tree is catalogued.
	// Every suite and warm-up function in the tree is catalogued; other
	// examples are only reported, so that adding one does not break this
	// test before its author adds it here.
	for _, pattern := range []string{"examples/suite/*/main.go", "examples/warmup/*/main.go", "examples/warmup/*/handler.js", "examples/*/main.go", "examples/js/*/handler.js"} {
		matches, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, m := range matches {
			rel, _ := filepath.Rel(root, filepath.Dir(m))
			if dirs[filepath.ToSlash(rel)] {
				continue
			}
			if strings.HasPrefix(pattern, "examples/*") {
				t.Logf("%s is not in the catalog", rel)
			} else {
				t.Errorf("%s is not in the catalog", rel)
			}
		}
	}
	if n := len(ByKind(Suite)); n != 17 {
		t.Errorf("%d suite functions, want 17", n)
	}
	if n := len(ByKind(Warmup)); n != 5 {
		t.Errorf("%d warm-up functions, want 5", n)
	}
}

// Variants resolve to their function's directory under their own name and
// request, and do not shadow a function.
func TestVariants(t *testing.T) {
	for _, name := range Variants() {
		v, err := Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", name, err)
		}
		if v.Name != name || v.Dir == "" || !strings.HasPrefix(v.Request.Target, "/") {
			t.Errorf("variant %s = %+v", name, v)
		}
		for _, f := range All() {
			if f.Name == name {
				t.Errorf("variant %s shadows a function", name)
			}
		}
	}
	g, err := Lookup("initheavy-gather")
	if err != nil || g.Dir != "examples/initheavy" || g.Request.Target != "/gather?n=8192&seed=1" {
		t.Errorf("initheavy-gather = %+v, %v", g, err)
	}
	if p, q := g.Request.Path(); p != "/gather" || q != "n=8192&seed=1" {
		t.Errorf("Path() = %q, %q", p, q)
	}
}

func TestLookupMissing(t *testing.T) {
	if _, err := Lookup("nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Lookup(nope) = %v, want ErrNotFound", err)
	}
}

func TestRoot(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Root(sub); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Root without go.mod = %v, want ErrNotFound", err)
	}
	// A go.mod of another module does not count; thaw's does.
	if err := os.WriteFile(filepath.Join(dir, "a", "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("// comment\nmodule github.com/thaw-run/thaw\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Root(sub); err != nil || got != dir {
		t.Errorf("Root = %q, %v; want %q", got, err, dir)
	}
}
