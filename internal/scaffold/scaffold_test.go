package scaffold

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/examples"
	"github.com/thaw-run/thaw/internal/build"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

func TestNew(t *testing.T) {
	testwasm.Offline(t)
	for _, tmpl := range Templates("go") {
		t.Run(tmpl.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "my-fn")
			res, err := New(dir, Options{Template: tmpl.Name})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{".gitignore", "go.mod", "handler.go", "handler_test.go", "main.go"}
			if res.Name != "my-fn" || res.Template.Name != tmpl.Name || !slices.Equal(res.Files, want) {
				t.Errorf("result %+v, want name my-fn, files %v", res, want)
			}
			sdk, err := build.SDKDir()
			if err != nil || res.SDKDir != sdk {
				t.Errorf("SDKDir = %s, want %s (%v)", res.SDKDir, sdk, err)
			}
			gomod := read(t, dir, "go.mod")
			for _, line := range []string{"module my-fn\n", "\ngo 1.24\n", "\nrequire " + build.SDKModule + " v0.0.0\n", "\nreplace " + build.SDKModule + " => " + sdk + "\n"} {
				if !strings.Contains(gomod, line) {
					t.Errorf("go.mod lacks %q:\n%s", line, gomod)
				}
			}
			// The handler and its test are the example's, byte for byte;
			// main.go's doc comment names the function.
			for _, f := range []string{"handler.go", "handler_test.go"} {
				if b, _ := fs.ReadFile(examples.Templates, tmpl.dir+"/"+f); read(t, dir, f) != string(b) {
					t.Errorf("%s differs from examples/%s/%s", f, tmpl.dir, f)
				}
			}
			if main := read(t, dir, "main.go"); !strings.HasPrefix(main, "// Command my-fn ") || !strings.Contains(main, "thaw.Handle(Handler())") {
				t.Errorf("main.go:\n%s", main)
			}
			// It vets (compiling its test) with no network and no module cache.
			cmd := exec.Command("go", "vet", "./...")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go vet in the new function: %v\n%s", err, out)
			}
		})
	}
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewRefuses(t *testing.T) {
	cache := testwasm.Offline(t)
	occupied := t.TempDir()
	if err := os.WriteFile(filepath.Join(occupied, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		opts      Options
		want      string
	}{
		{"unknown js template", "fn", Options{Lang: "js", Template: "nope"}, "want one of hello, http-json, template"},
		{"unknown language", "fn", Options{Lang: "cobol"}, `language "cobol"`},
		{"unknown template", "fn", Options{Template: "nope"}, "want one of hello, http-json"},
		{"bad name", "My Fn", Options{}, `function name "My Fn"`},
		{"occupied", occupied, Options{}, "not empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if !filepath.IsAbs(dir) {
				dir = filepath.Join(t.TempDir(), dir)
			}
			_, err := New(dir, tc.opts)
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid saying %q", err, tc.want)
			}
			if dir != occupied {
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s was created (%v)", dir, err)
				}
			}
		})
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("refused requests wrote to the cache: %v", entries)
	}
}

// A JavaScript function is its template's handler.js and test, a
// package.json for Node and a .gitignore; it needs no SDK, so the cache
// stays empty.
func TestNewJS(t *testing.T) {
	cache := testwasm.Offline(t)
	for _, tmpl := range Templates("js") {
		t.Run(tmpl.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "my-js")
			res, err := New(dir, Options{Lang: "javascript", Template: tmpl.Name})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{".gitignore", "handler.js", "handler.test.mjs", "package.json"}
			if res.Name != "my-js" || res.Template != tmpl || res.SDKDir != "" || !slices.Equal(res.Files, want) {
				t.Errorf("result %+v, want name my-js, files %v, no SDK", res, want)
			}
			for _, f := range []string{"handler.js", "handler.test.mjs"} {
				if b, _ := fs.ReadFile(examples.Templates, tmpl.dir+"/"+f); len(b) == 0 || read(t, dir, f) != string(b) {
					t.Errorf("%s differs from examples/%s/%s", f, tmpl.dir, f)
				}
			}
			var pkg struct{ Name, Type string }
			if err := json.Unmarshal([]byte(read(t, dir, "package.json")), &pkg); err != nil || pkg.Name != "my-js" || pkg.Type != "module" {
				t.Errorf("package.json: %+v, %v", pkg, err)
			}
			if build.JSScript(dir) != filepath.Join(dir, "handler.js") {
				t.Errorf("thaw build would not take %s for a JavaScript function", dir)
			}
		})
	}
	if got := Templates("js")[0].Name; got != "hello" {
		t.Errorf("the default JavaScript template is %s, want hello", got)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("thaw new --lang js wrote to the cache: %v", entries)
	}
}

// Every JavaScript template's test passes under Node's test runner in the
// directory thaw new writes, as a user would run it (`node --test`), and
// fails once the handler is broken: the test does test the handler.
func TestNewJSNodeTest(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: the JavaScript templates' own tests (handler.test.mjs) need Node 18 or later; scripts/test.sh installs it")
	}
	for _, tmpl := range Templates("js") {
		t.Run(tmpl.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fn")
			if _, err := New(dir, Options{Lang: "js", Template: tmpl.Name}); err != nil {
				t.Fatal(err)
			}
			nodeTest := func() ([]byte, error) {
				cmd := exec.Command(node, "--test")
				cmd.Dir = dir
				return cmd.CombinedOutput()
			}
			if out, err := nodeTest(); err != nil {
				t.Fatalf("node --test: %v\n%s", err, out)
			}
			src := read(t, dir, "handler.js")
			broken := strings.Replace(src, "async fetch(request) {", `async fetch(request) { throw new Error("broken");`, 1)
			if broken == src {
				t.Fatal("handler.js has no `async fetch(request) {` to break")
			}
			if err := os.WriteFile(filepath.Join(dir, "handler.js"), []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := nodeTest()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(string(out), "broken") {
				t.Errorf("node --test of a broken handler: %v, want a failure naming the error\n%s", err, out)
			}
		})
	}
}

// An empty directory is as good as none.
func TestNewInEmptyDir(t *testing.T) {
	testwasm.Offline(t)
	dir := filepath.Join(t.TempDir(), "fn")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, Options{Lang: "go"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(read(t, dir, "main.go"), "// Command fn ") {
		t.Error("main.go does not name the function")
	}
}
