package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/testwasm"
)

// readmeSteps returns the shell lines of the first sh block in README.md's
// "Writing a function" section, without those this test does itself:
// installing thaw (it runs the binary TestMain built) and starting a server
// (it uses the shared one).
func readmeSteps(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testwasm.Root(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Writing a function\n")
	_, block, ok2 := strings.Cut(section, "```sh\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal(`README.md has no sh block under "## Writing a function"`)
	}
	var steps []string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if strings.HasPrefix(line, "go install ./cmd/thaw") || strings.HasPrefix(line, "thaw serve") {
			continue
		}
		steps = append(steps, line)
	}
	if len(steps) < 5 || !strings.HasPrefix(steps[0], "thaw new ") {
		t.Fatalf("README's steps do not start from thaw new: %q", steps)
	}
	return steps
}

// newcomer runs a shell script the way a new user would, in dir: thaw on
// PATH, the shared server as $THAW_SERVER, and a machine that never
// fetched a Go module (testwasm.Offline). It returns stdout and stderr and
// fails the test on a non-zero exit.
func newcomer(t *testing.T, dir, script string) (string, string) {
	t.Helper()
	return runNew(t, dir, script, false)
}

// runNew is newcomer, keeping the Go module cache if modCache is set: a
// JavaScript function's runtime needs goja, which a machine that never
// fetched a module has to download from the module proxy.
func runNew(t *testing.T, dir, script string, modCache bool) (string, string) {
	t.Helper()
	p := shared(t) // started, if first, with the real environment
	mods, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	testwasm.Offline(t)
	if modCache {
		t.Setenv("GOMODCACHE", strings.TrimSpace(string(mods)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(thawBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"THAW_SERVER="+p.URL, "THAW_TOKEN="+token)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n--- script\n%s\n--- stdout\n%s\n--- stderr\n%s", err, script, &stdout, &stderr)
	}
	return stdout.String(), stderr.String()
}

// TestNewcomerPath does what README.md's "Writing a function" says, in a
// temporary directory outside the repository with no network: thaw new,
// edit nothing, go test, thaw build, thaw deploy, thaw invoke.
func TestNewcomerPath(t *testing.T) {
	home := t.TempDir()
	if rel, err := filepath.Rel(testwasm.Root(), home); err == nil && !strings.HasPrefix(rel, "..") {
		t.Fatalf("%s is inside the repository", home)
	}
	steps := readmeSteps(t)
	stdout, stderr := newcomer(t, home, strings.Join(steps, "\n"))
	if !strings.Contains(stdout, "hello, thaw (GET /)\n") || !strings.Contains(stdout, "deployed myfn") {
		t.Errorf("the README's steps printed\n%s\nwant the deploy and the greeting (stderr:\n%s)", stdout, stderr)
	}
	t.Cleanup(func() { cli(t, shared(t), "rm", "myfn") })
}

// The http-json template, built from another directory by absolute path
// with the SDK's cache cleared since thaw new, then deployed and invoked.
func TestNewHTTPJSONBuildsFromAnywhere(t *testing.T) {
	home := t.TempDir()
	script := `thaw new fns/api --template http-json
rm -r "$XDG_CACHE_HOME/thaw"
mkdir elsewhere && cd elsewhere
thaw build "$OLDPWD/fns/api"
thaw deploy newapi api.wasm
thaw invoke newapi /stats -d '{"numbers":[1,2,3]}'
thaw invoke newapi /hello/you`
	stdout, _ := newcomer(t, home, script)
	for _, want := range []string{`{"count":3,"sum":6,"mean":2,"min":1,"max":3}`, `{"message":"hello, you"}`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %s:\n%s", want, stdout)
		}
	}
	t.Cleanup(func() { cli(t, shared(t), "rm", "newapi") })
	// thaw new refuses an unknown language with the usage exit code.
	code, _, stderr := cli(t, shared(t), "new", filepath.Join(home, "py"), "--lang", "python")
	if code != 2 || !strings.Contains(stderr, `language "python"`) {
		t.Errorf("thaw new --lang python: exit %d, stderr %q", code, stderr)
	}
}

// A JavaScript function from thaw new, edited nothing, built and deployed
// with no module proxy (goja from the module cache); the http-json
// template deployed straight from its handler.js; and a script that
// throws: a guest fault naming the script's line. The snapshot holds the
// initialised program: the top level's counter is 1 in every answer,
// restored or not.
func TestNewJSFunction(t *testing.T) {
	home := t.TempDir()
	script := `thaw new hi --lang js
test ! -e hi/go.mod
thaw build hi
thaw deploy jshi hi.wasm
thaw invoke jshi '/x?name=thaw'
thaw new api --lang js --template http-json
thaw deploy jsapi api/handler.js
thaw invoke jsapi /stats -d '{"numbers":[1,2,3]}'
cat > boom.js <<'EOF'
let loads = 0;
loads++;
export default {
  async fetch(request) {
    const url = new URL(request.url);
    console.log("fetch", url.pathname);
    if (url.pathname === "/throw") {
      throw new Error("boom from " + url.pathname);
    }
    return Response.json({loads, bytes: Array.from(new TextEncoder().encode(url.searchParams.get("s") || ""))});
  },
};
EOF
thaw deploy jsboom boom.js
thaw invoke jsboom '/?s=%C3%A9'`
	stdout, stderr := runNew(t, home, script, true)
	t.Cleanup(func() {
		for _, name := range []string{"jshi", "jsapi", "jsboom"} {
			cli(t, shared(t), "rm", name)
		}
	})
	for _, want := range []string{"deployed jshi", "hello, thaw (GET /x)\n", `{"count":3,"sum":6,"mean":2,"min":1,"max":3}`, `{"loads":1,"bytes":[195,169]}`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s\nstderr:\n%s", want, stdout, stderr)
		}
	}
	code, _, stderr := cli(t, shared(t), "invoke", "jsboom", "/throw")
	if code == 0 || !strings.Contains(stderr, "Error: boom from /throw") || !strings.Contains(stderr, "boom.js:8:") {
		t.Errorf("invoke /throw: exit %d, stderr %q; want a guest fault naming boom.js:8", code, stderr)
	}
	// The instance that threw is discarded; the next comes from the
	// snapshot, with the top level run once.
	code, stdout, stderr = cli(t, shared(t), "invoke", "jsboom", "/")
	if code != 0 || !strings.Contains(stdout, `{"loads":1,"bytes":[]}`) {
		t.Errorf("invoke / after the fault: exit %d, %q %q", code, stdout, stderr)
	}
}
