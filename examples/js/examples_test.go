// Package js holds the JavaScript example functions, one handler.js per
// directory; they are `thaw new --lang js`'s templates. This test runs
// them natively, in the runtime thaw build links into their modules.
package js

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	thawjs "github.com/thaw-run/thaw/sdk/js"
)

// load loads dir/handler.js.
func load(t *testing.T, dir string) *thawjs.Handler {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(dir, "handler.js"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := thawjs.Load("handler.js", string(src))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	return rec
}

func TestHello(t *testing.T) {
	h := load(t, "hello")
	for target, want := range map[string]string{
		"/?name=thaw": "hello, thaw (GET /)\n",
		"/a/b":        "hello, world (GET /a/b)\n",
	} {
		if rec := do(h, "GET", target, ""); rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("%s: %d %q, want %q", target, rec.Code, rec.Body, want)
		}
	}
}

// The answers are the Go http-json example's, byte for byte.
func TestHTTPJSON(t *testing.T) {
	h := load(t, "js_json")
	for _, tc := range []struct {
		method, target, body string
		status               int
		want                 string
	}{
		{"POST", "/stats", `{"numbers":[1,2,3]}`, 200, `{"count":3,"sum":6,"mean":2,"min":1,"max":3}`},
		{"POST", "/stats", `{"numbers":[2.5]}`, 200, `{"count":1,"sum":2.5,"mean":2.5,"min":2.5,"max":2.5}`},
		{"POST", "/stats", `{"numbers":[]}`, 400, `{"error":"numbers: want at least one"}`},
		{"POST", "/stats", `{`, 400, `{"error":"bad JSON: `},
		{"GET", "/hello/you", "", 200, `{"message":"hello, you"}`},
		{"GET", "/stats", "", 405, `{"error":"method not allowed"}`},
		{"GET", "/nope", "", 404, `{"error":"not found"}`},
	} {
		rec := do(h, tc.method, tc.target, tc.body)
		if rec.Code != tc.status || !strings.HasPrefix(rec.Body.String(), tc.want) || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s %s %s: %d %q, want %d %q", tc.method, tc.target, tc.body, rec.Code, rec.Body, tc.status, tc.want)
		}
	}
}

func TestTemplate(t *testing.T) {
	h := load(t, "js_html")
	rec := do(h, "GET", "/?title=a%3Cb&items=x,y", "")
	for _, want := range []string{"<title>a&lt;b</title>", "<li>x</li><li>y</li>", "<p>2 items,"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET: body lacks %q:\n%s", want, rec.Body)
		}
	}
	rec = do(h, "POST", "/", `{"title":"T","items":["<i>"]}`)
	if !strings.Contains(rec.Body.String(), "<li>&lt;i&gt;</li>") || !strings.Contains(rec.Body.String(), "<p>1 items,") {
		t.Errorf("POST: %s", rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
}
