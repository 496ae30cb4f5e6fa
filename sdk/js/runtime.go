// Package thawjs runs a JavaScript function in a thaw module: the script,
// written as for Cloudflare Workers, Deno or Spin,
//
//	export default {
//	  async fetch(request) {
//	    return new Response("hello\n");
//	  },
//	};
//
// is compiled and its top level run by goja (a JavaScript engine written
// in Go, so it compiles to wasip1 with the function) when the module
// initialises, which is before thaw snapshots it; each request then calls
// fetch on the same engine, which keeps what the script and goja have
// built since (caches, compiled regular expressions, memo tables).
//
// The globals are ECMAScript's (JSON, Map, Promise, ...) and the Web
// platform subset in prelude.js: Request, Response, Headers, URL,
// URLSearchParams, TextEncoder, TextDecoder, queueMicrotask and console,
// whose output goes to the module's stderr. Bodies are whole: text(),
// json(), arrayBuffer() and bytes() resolve at once, and body is null.
// There are no timers and no fetch to the network: a function's promise
// must settle from the request alone.
//
// An exception the script does not catch, or a promise from fetch that
// rejects or never settles, is a guest fault: Handler's ServeHTTP panics
// with the exception and its stack (script name, line and column), which
// the Go SDK reports to the host as a panic (the client sees 502).
//
// `thaw build` on a directory with handler.js writes the Go program that
// embeds the script and registers Handler with the Go SDK; docs/abi.md's
// Go SDK and this runtime implement the same ABI.
package thawjs

import (
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dop251/goja"
)

//go:embed prelude.js
var prelude string

// preludeProgram is prelude.js compiled, once per process.
var preludeProgram = sync.OnceValues(func() (*goja.Program, error) {
	return goja.Compile("thaw:prelude.js", prelude, true)
})

// exportDefault matches `export default` at the start of a line: goja
// runs scripts, not ES modules, so Load turns it into an assignment on the
// same line, which keeps line numbers.
var exportDefault = regexp.MustCompile(`(?m)^([ \t]*)export[ \t]+default[ \t]+`)

// exportName is the global that `export default` is rewritten to assign.
const exportName = "__thaw_default"

// Handler serves requests with a script's fetch handler. It is safe for
// concurrent use; requests run one at a time, as a thaw instance sends
// them.
type Handler struct {
	mu       sync.Mutex
	vm       *goja.Runtime
	fetch    goja.Callable
	handler  goja.Value // the exported object, fetch's this
	request  goja.Callable
	response goja.Callable
	log      io.Writer
}

// Load compiles the script src (name is its file name, used in stack
// traces), installs the globals and runs the script's top level. The
// script must `export default` an object with a fetch method. Compile
// errors and exceptions at the top level are returned with their line.
func Load(name, src string) (*Handler, error) {
	return load(name, src, os.Stderr)
}

// MustLoad is Load for a module's init: it panics on error, which fails
// the module's initialisation, so a broken script fails its deploy.
func MustLoad(name, src string) *Handler {
	h, err := Load(name, src)
	if err != nil {
		panic(err)
	}
	return h
}

func load(name, src string, log io.Writer) (*Handler, error) {
	h := &Handler{vm: goja.New(), log: log}
	if err := h.installNatives(); err != nil {
		return nil, err
	}
	p, err := preludeProgram()
	if err != nil {
		return nil, fmt.Errorf("thawjs: prelude: %w", err)
	}
	if _, err := h.vm.RunProgram(p); err != nil {
		return nil, fmt.Errorf("thawjs: prelude: %w", err)
	}
	h.request, _ = goja.AssertFunction(h.vm.Get("__thaw_request"))
	h.response, _ = goja.AssertFunction(h.vm.Get("__thaw_response"))
	if err := h.warm(); err != nil {
		return nil, err
	}
	src = exportDefault.ReplaceAllString(src, "${1}globalThis."+exportName+" = ")
	prog, err := goja.Compile(name, src, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := h.vm.RunProgram(prog); err != nil {
		return nil, fmt.Errorf("%s: top level: %s", name, describe(err))
	}
	h.handler = h.vm.Get(exportName)
	if h.handler == nil || goja.IsUndefined(h.handler) || goja.IsNull(h.handler) {
		return nil, fmt.Errorf("%s: no `export default { async fetch(request) { ... } }`", name)
	}
	fetch, ok := goja.AssertFunction(h.handler.ToObject(h.vm).Get("fetch"))
	if !ok {
		return nil, fmt.Errorf("%s: the default export has no fetch method", name)
	}
	h.fetch = fetch
	return h, nil
}

// installNatives defines __thaw, the Go functions prelude.js wraps.
func (h *Handler) installNatives() error {
	vm := h.vm
	native := vm.NewObject()
	set := func(name string, f func(goja.FunctionCall) goja.Value) {
		if err := native.Set(name, f); err != nil {
			panic(err) // a fresh object accepts any property
		}
	}
	set("utf8Encode", func(c goja.FunctionCall) goja.Value {
		return vm.ToValue(vm.NewArrayBuffer([]byte(c.Argument(0).String())))
	})
	set("utf8Decode", func(c goja.FunctionCall) goja.Value {
		ab, ok := c.Argument(0).Export().(goja.ArrayBuffer)
		if !ok {
			panic(vm.NewTypeError("utf8Decode: not an ArrayBuffer"))
		}
		b := ab.Bytes()
		off, n := c.Argument(1).ToInteger(), c.Argument(2).ToInteger()
		b = b[off : off+n]
		if !utf8.Valid(b) {
			return vm.ToValue(strings.ToValidUTF8(string(b), "\uFFFD"))
		}
		return vm.ToValue(string(b))
	})
	set("parseURL", func(c goja.FunctionCall) goja.Value {
		u, err := parseURL(c.Argument(0).String(), c.Argument(1).String())
		if err != nil {
			panic(vm.NewTypeError(err.Error()))
		}
		return vm.ToValue(u)
	})
	set("log", func(c goja.FunctionCall) goja.Value {
		msg := c.Argument(1).String()
		if lvl := c.Argument(0).String(); lvl != "log" && lvl != "info" {
			msg = lvl + ": " + msg
		}
		fmt.Fprintln(h.log, msg)
		return goja.Undefined()
	})
	return vm.Set("__thaw", native)
}

// parseURL resolves raw against base (if not empty) and returns the parts
// URL's constructor sets. The result must be absolute.
func parseURL(raw, base string) (map[string]any, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q", raw)
	}
	if base != "" {
		b, err := url.Parse(base)
		if err != nil || !b.IsAbs() {
			return nil, fmt.Errorf("invalid base URL %q", base)
		}
		u = b.ResolveReference(u)
	}
	if !u.IsAbs() || (u.Host == "" && u.Opaque == "" && u.Scheme != "file") {
		return nil, fmt.Errorf("invalid URL %q", raw)
	}
	path := u.EscapedPath()
	if u.Opaque != "" {
		path = u.Opaque
	} else if path == "" {
		path = "/"
	}
	out := map[string]any{
		"protocol": strings.ToLower(u.Scheme) + ":", "hostname": strings.ToLower(u.Hostname()), "port": u.Port(),
		"pathname": path, "search": "", "hash": "", "username": "", "password": "",
	}
	if u.RawQuery != "" {
		out["search"] = "?" + u.RawQuery
	}
	if u.Fragment != "" {
		out["hash"] = "#" + u.EscapedFragment()
	}
	if u.User != nil {
		out["username"] = u.User.Username()
		out["password"], _ = u.User.Password()
	}
	if (u.Scheme == "http" && out["port"] == "80") || (u.Scheme == "https" && out["port"] == "443") {
		out["port"] = ""
	}
	return out, nil
}

// ServeHTTP calls the script's fetch with the request and writes the
// Response it returns. An uncaught exception, a rejected promise or one
// that never settles panics (a guest fault), with the exception's stack.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(fmt.Sprintf("thawjs: read the request body: %v", err))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	req := h.toJS(r, body)
	ret, err := h.fetch(h.handler, req, h.vm.NewObject(), h.vm.NewObject())
	if err != nil {
		panic("Uncaught " + describe(err))
	}
	h.write(w, h.settle(ret))
}

// toJS returns r, whose body is body, as a JavaScript Request.
func (h *Handler) toJS(r *http.Request, body []byte) goja.Value {
	vm := h.vm
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	headers := make([]any, 0, 2*len(r.Header)+2)
	if r.Host != "" {
		headers = append(headers, "host", r.Host)
	}
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		for _, v := range vs {
			headers = append(headers, lk, v)
		}
	}
	jsBody := goja.Null()
	if len(body) > 0 {
		jsBody = vm.ToValue(vm.NewArrayBuffer(body))
	}
	req, err := h.request(goja.Undefined(), vm.ToValue(r.Method), vm.ToValue("http://"+host+r.URL.RequestURI()),
		vm.ToValue(headers), jsBody)
	if err != nil {
		panic("thawjs: build the Request: " + describe(err))
	}
	return req
}

// settle returns what fetch returned, resolved if it is a promise. The
// job queue ran when fetch returned: a promise still pending waits for
// something that cannot happen (no timers, no I/O).
func (h *Handler) settle(ret goja.Value) goja.Value {
	p, ok := ret.Export().(*goja.Promise)
	if !ok {
		return ret
	}
	switch p.State() {
	case goja.PromiseStateFulfilled:
		return p.Result()
	case goja.PromiseStateRejected:
		panic("Uncaught (in promise) " + describeValue(p.Result()))
	default:
		panic("thawjs: the promise fetch returned never settled (there are no timers or network I/O)")
	}
}

// write sends the JavaScript Response resp.
func (h *Handler) write(w http.ResponseWriter, resp goja.Value) {
	out, err := h.response(goja.Undefined(), resp)
	if err != nil {
		panic("Uncaught " + describe(err))
	}
	o := out.ToObject(h.vm)
	hdr := w.Header()
	for _, pair := range o.Get("headers").Export().([]any) {
		kv := pair.([]any)
		hdr.Add(kv[0].(string), kv[1].(string))
	}
	w.WriteHeader(int(o.Get("status").ToInteger()))
	switch b := o.Get("body").Export().(type) {
	case string:
		_, _ = io.WriteString(w, b)
	case goja.ArrayBuffer:
		_, _ = w.Write(b.Bytes())
	}
}

// warm serves a request with the prelude's __thaw_warm instead of the
// script, at load: goja builds much of its machinery (built-in prototypes,
// the promise job queue, property shapes) on first use, and doing that
// before the snapshot spares every restored instance's first request
// (measured: 5.7 ms of a restored hello's first request in wasm, against
// 0.9 ms for the Go hello). The script's own code is not run.
func (h *Handler) warm() error {
	f, ok := goja.AssertFunction(h.vm.Get("__thaw_warm"))
	if !ok {
		return fmt.Errorf("thawjs: the prelude has no __thaw_warm")
	}
	r, err := http.NewRequest("POST", "http://localhost/warm?a=1&b=%C3%A9", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	ret, err := f(goja.Undefined(), h.toJS(r, []byte("{}")))
	if err != nil {
		return fmt.Errorf("thawjs: warm: %s", describe(err))
	}
	h.write(discard{header: http.Header{}}, h.settle(ret))
	return nil
}

// discard is an http.ResponseWriter that keeps nothing.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

// describe returns a goja error as one message with the script's stack:
// "Error: boom\n\tat fetch (handler.js:3:11(4))".
func describe(err error) string {
	if ex, ok := err.(*goja.Exception); ok {
		if s := stackOf(ex.Value()); s != "" {
			return s
		}
		return ex.String()
	}
	return err.Error()
}

// describeValue is describe for a rejected promise's reason.
func describeValue(v goja.Value) string {
	if s := stackOf(v); s != "" {
		return s
	}
	if v == nil {
		return "undefined"
	}
	return v.String()
}

// stackOf returns an Error object's stack property, or "".
func stackOf(v goja.Value) string {
	o, ok := v.(*goja.Object)
	if !ok {
		return ""
	}
	s := o.Get("stack")
	if s == nil || goja.IsUndefined(s) {
		return ""
	}
	return strings.TrimRight(s.String(), "\n")
}
