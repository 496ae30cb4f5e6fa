// Package catalog lists thaw's example functions: the ports of the
// cold-start suites (examples/suite), the warm-up workloads
// (examples/warmup) and the plain examples (examples/hello), each with a
// default request that benchmarks send.
//
// The table is written out rather than discovered from the directory tree
// so that a half-written function never joins a benchmark by accident, and
// so that every entry carries what a directory cannot: its origin, its
// request and a description. A test builds every entry to wasm and checks
// that the directories match.
package catalog

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Kind classifies a function.
type Kind string

// The kinds of functions.
const (
	// Suite functions are ports of FunctionBench, SeBS and vSwarm: fixed
	// work per request, initialised at init.
	Suite Kind = "suite"
	// Warmup functions get faster over their first requests, as JIT
	// runtimes do, so that a snapshot policy has something to learn.
	Warmup Kind = "warmup"
	// Example functions show how to write a function.
	Example Kind = "example"
)

// Request is an HTTP request to send to a function.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Target is the path with an optional query, e.g. "/?n=128".
	Target string
	// Body is the request body; nil for none.
	Body []byte
	// Header holds extra request headers; nil for none.
	Header map[string][]string
}

// Path returns the target's path and raw query.
func (r Request) Path() (path, rawQuery string) {
	path, rawQuery, _ = strings.Cut(r.Target, "?")
	return path, rawQuery
}

// Function is one example function.
type Function struct {
	// Name is unique in the catalog and is the name benchmarks deploy it as.
	Name string
	// Dir is the package directory relative to the repository root, with
	// forward slashes.
	Dir string
	// Kind classifies the function.
	Kind Kind
	// Origin is the suite the function is ported from (FunctionBench, SeBS,
	// vSwarm), or "thaw" for functions of our own.
	Origin string
	// Request is the default request: deterministic, it gives the same
	// response on every instance (except where Description says not).
	Request Request
	// MemoryMiB is a linear-memory cap with headroom over what the function
	// uses after init and its default request under wazero.
	MemoryMiB int
	// Description says in one line what the function does.
	Description string
}

// get is a GET request for target.
func get(target string) Request { return Request{Method: "GET", Target: target} }

// functions is the catalog, suite first, in the order papers list them.
var functions = []Function{
	{"helloworld", "examples/suite/helloworld", Suite, "FunctionBench", get("/"), 64,
		"returns a greeting; measures platform overhead"},
	{"chameleon", "examples/suite/chameleon", Suite, "FunctionBench", get("/?rows=200&cols=10"), 64,
		"renders an HTML table with html/template"},
	{"pyaes", "examples/suite/pyaes", Suite, "FunctionBench", get("/?length=16384&iterations=1"), 64,
		"AES-128-CTR encrypts and decrypts a generated message, CTR loop in Go"},
	{"image_rotate", "examples/suite/image_rotate", Suite, "FunctionBench", get("/?turns=1"), 64,
		"decodes a 640x480 JPEG, rotates it 90 degrees, encodes it"},
	{"json_serdes", "examples/suite/json_serdes", Suite, "FunctionBench", get("/"), 64,
		"decodes and re-encodes a generated 100 KB JSON document"},
	{"lr_serving", "examples/suite/lr_serving", Suite, "FunctionBench", get("/"), 64,
		"logistic-regression sentiment score of a review over 4 MiB of hashed-feature weights"},
	{"cnn_serving", "examples/suite/cnn_serving", Suite, "FunctionBench", get("/?seed=1"), 128,
		"forward pass of a 21 MB VGG-style CNN over a 64x64 image, top-5 of 1000 classes"},
	{"rnn_serving", "examples/suite/rnn_serving", Suite, "FunctionBench", get("/?language=English&start_letters=ABC"), 64,
		"an LSTM (1.4 MB) generates one name per start letter"},
	{"matmul", "examples/suite/matmul", Suite, "FunctionBench", get("/?n=128"), 64,
		"multiplies two seeded n x n float64 matrices"},
	{"compression", "examples/suite/compression", Suite, "SeBS", get("/"), 64,
		"gzips a generated 1 MiB log buffer"},
	{"dynamic_html", "examples/suite/dynamic_html", Suite, "SeBS", get("/?username=thaw&random_len=1000"), 64,
		"renders a page of 1000 seeded random numbers"},
	{"graph_bfs", "examples/suite/graph_bfs", Suite, "SeBS", get("/?source=0"), 128,
		"breadth-first search over a 100k-node Barabasi-Albert graph built at init"},
	{"graph_pagerank", "examples/suite/graph_pagerank", Suite, "SeBS", get("/?iterations=5"), 128,
		"5 PageRank iterations over a 100k-node Barabasi-Albert graph"},
	{"graph_mst", "examples/suite/graph_mst", Suite, "SeBS", get("/"), 128,
		"Kruskal's minimum spanning tree (counting sort, union-find) of a 100k-node weighted Barabasi-Albert graph"},
	{"video_frames", "examples/suite/video_frames", Suite, "SeBS", get("/?frames=32"), 64,
		"greyscale, blur and frame difference over 32 generated 160x120 frames"},
	{"js_json", "examples/js/js_json", Suite, "thaw",
		Request{Method: "POST", Target: "/stats", Header: map[string][]string{"Content-Type": {"application/json"}},
			Body: []byte(`{"numbers":[1,2.5,3,4.5,5,6.5,7,8.5]}`)}, 64,
		"a JSON API in JavaScript (sdk/js): routes, decodes a POSTed list, answers its statistics"},
	{"js_html", "examples/js/js_html", Suite, "thaw", get("/?title=thaw&items=alpha,beta,gamma,delta"), 64,
		"renders an HTML page from a template in JavaScript (sdk/js), compiled at first use"},
	{"js", "examples/warmup/js", Warmup, "thaw", get("/"), 128,
		"JavaScript in goja: compiles on first use, memoizes hot functions over ~180 requests"},
	{"lazymodel", "examples/warmup/lazymodel", Warmup, "thaw", get("/"), 128,
		"loads a 32 MiB embedding model shard by shard on first use, then serves similarity queries; without ?item= the item depends on the request count"},
	{"templates", "examples/warmup/templates", Warmup, "thaw", get("/"), 64,
		"compiles each of 200 page templates on first use; without ?k= the template depends on the request count"},
	{"flat", "examples/warmup/flat", Warmup, "thaw", get("/"), 64,
		"control without warm-up: hashes a 256 KiB buffer"},
	{"jstemplates", "examples/warmup/jstemplates", Warmup, "thaw", get("/"), 128,
		"JavaScript (sdk/js): compiles each of 200 page templates on first use; without ?k= the template depends on the request count"},
	{"hello", "examples/hello", Example, "thaw", get("/?name=thaw"), 64,
		"the smallest function: greets ?name="},
	{"js_hello", "examples/js/hello", Example, "thaw", get("/?name=thaw"), 64,
		"the smallest JavaScript function (sdk/js): greets ?name="},
	{"initheavy", "examples/initheavy", Example, "thaw", get("/?q=alpha"), 256,
		"builds a ~100 MiB search index at init; /?q= searches, /gather touches scattered pages"},
	{"jsontransform", "examples/jsontransform", Example, "thaw",
		Request{Method: "POST", Target: "/", Header: map[string][]string{"Content-Type": {"application/json"}},
			Body: []byte(`{"items":[{"name":"b","price":2.5,"qty":4},{"name":"a","price":1,"qty":3}]}`)}, 64,
		"transforms a POSTed JSON document deterministically"},
	{"faulty", "examples/faulty", Example, "thaw", get("/ok"), 64,
		"misbehaves on purpose per route (/panic, /trap, /loop, /oom, ...) for failure tests"},
}

// variants are catalogued functions under another name with another
// request, for benchmarks that measure one function on two request shapes.
// Their names are unique among functions and variants alike.
var variants = []struct {
	name, of string
	req      Request
}{
	// initheavy serving embedding-lookup shaped requests: 8192 scattered
	// rows, a working set of about 26 MiB, like REAP's functions.
	{"initheavy-gather", "initheavy", get("/gather?n=8192&seed=1")},
}

// All returns every function, suite first.
func All() []Function { return slices.Clone(functions) }

// ByKind returns the functions of kind k in catalog order.
func ByKind(k Kind) []Function {
	var out []Function
	for _, f := range functions {
		if f.Kind == k {
			out = append(out, f)
		}
	}
	return out
}

// Lookup returns the function or variant named name, or an error wrapping
// errdefs.ErrNotFound. A variant is its function under the variant's name
// and request.
func Lookup(name string) (Function, error) {
	if i := slices.IndexFunc(functions, func(f Function) bool { return f.Name == name }); i >= 0 {
		return functions[i], nil
	}
	for _, v := range variants {
		if v.name == name {
			f, err := Lookup(v.of)
			if err != nil {
				return Function{}, err
			}
			f.Name, f.Request = v.name, v.req
			return f, nil
		}
	}
	return Function{}, fmt.Errorf("function %q is not in the catalog: %w", name, errdefs.ErrNotFound)
}

// Variants returns the names of the variants, in catalog order.
func Variants() []string {
	var out []string
	for _, v := range variants {
		out = append(out, v.name)
	}
	return out
}

// Path returns the function's package directory under the repository root.
func (f Function) Path(root string) string { return filepath.Join(root, filepath.FromSlash(f.Dir)) }

// modulePath is the repository's Go module path.
const modulePath = "github.com/thaw-run/thaw"

// Root finds the repository root: the nearest directory at or above dir
// whose go.mod declares thaw's module. Tests and benchmarks run from
// package directories use it to find examples.
func Root(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if isRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s at or above the working directory: %w", modulePath, errdefs.ErrNotFound)
		}
		dir = parent
	}
}

// isRoot reports whether the go.mod at path declares thaw's module.
func isRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "module")), `"`) == modulePath
		}
	}
	return false
}
