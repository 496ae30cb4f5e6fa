package thawjs

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve loads src and serves one request with it; a panic is returned as
// its message.
func serve(t *testing.T, src string, req *http.Request) (rec *httptest.ResponseRecorder, panicked string, log string) {
	t.Helper()
	var out bytes.Buffer
	h, err := load("handler.js", src, &out)
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	func() {
		defer func() {
			if v := recover(); v != nil {
				panicked = fmt.Sprint(v)
			}
		}()
		h.ServeHTTP(rec, req)
	}()
	return rec, panicked, out.String()
}

func TestWebAPI(t *testing.T) {
	src := `
const started = new Date(0).toISOString(); // top level runs once, at load
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const body = new Uint8Array(await request.arrayBuffer());
    console.log("got", request.method, url.pathname, {n: body.length});
    console.error("oops");
    const enc = new TextEncoder().encode("héllo");
    const dec = new TextDecoder().decode(enc.subarray(2));
    const h = new Headers([["X-A", "1"], ["x-a", "2"]]);
    const sp = new URLSearchParams("a=1&b=x+y&a=3");
    sp.append("c", "&=");
    url.searchParams.set("q", "z z");
    return Response.json({
      method: request.method, path: url.pathname, host: url.host, name: url.searchParams.get("name"),
      ct: request.headers.get("content-type"), multi: request.headers.get("x-multi"),
      body: Array.from(body), enc: Array.from(enc), dec, xa: h.get("x-a"), entries: [...h],
      sp: sp.toString(), all: sp.getAll("a"), href: url.href, rel: new URL("../x?y#z", "http://h/a/b/c").href,
      started,
    }, {status: 201, headers: {"X-Out": "yes"}});
  },
};`
	req := httptest.NewRequest("PUT", "http://example.com:8080/p/q?name=js", bytes.NewReader([]byte{0, 1, 255}))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	rec, p, log := serve(t, src, req)
	if p != "" {
		t.Fatal(p)
	}
	want := `{"method":"PUT","path":"/p/q","host":"example.com:8080","name":"js","ct":"application/octet-stream",` +
		`"multi":"a, b","body":[0,1,255],"enc":[104,195,169,108,108,111],"dec":"�llo","xa":"1, 2",` +
		`"entries":[["x-a","1, 2"]],"sp":"a=1&b=x+y&a=3&c=%26%3D","all":["1","3"],` +
		`"href":"http://example.com:8080/p/q?name=js&q=z+z","rel":"http://h/a/x?y#z","started":"1970-01-01T00:00:00.000Z"}`
	if rec.Code != 201 || rec.Body.String() != want {
		t.Errorf("status %d body\n%s\nwant 201\n%s", rec.Code, rec.Body, want)
	}
	if ct, x := rec.Header().Get("Content-Type"), rec.Header().Get("X-Out"); ct != "application/json" || x != "yes" {
		t.Errorf("headers %v", rec.Header())
	}
	if log != "got PUT /p/q {\"n\":3}\nerror: oops\n" {
		t.Errorf("log %q", log)
	}
}

func TestBodies(t *testing.T) {
	src := `export default {
  fetch(req) {
    const u = new URL(req.url);
    switch (u.pathname) {
    case "/text": return req.text().then((t) => new Response(t.toUpperCase()));
    case "/bin": return new Response(new Uint8Array([9, 8, 7]).subarray(1), {status: 203});
    case "/empty": return new Response(null, {status: 204});
    case "/json": return req.json().then((v) => Response.json(v.a));
    case "/twice": return req.text().then(() => req.text()).then(() => new Response("no"));
    }
    return new Response("nf", {status: 404});
  },
};`
	for _, tc := range []struct {
		path, body string
		status     int
		want, ct   string
	}{
		{"/text", "héllo", 200, "HÉLLO", "text/plain;charset=UTF-8"},
		{"/bin", "", 203, "\x08\x07", ""},
		{"/empty", "", 204, "", ""},
		{"/json", `{"a":[1,"x"]}`, 200, `[1,"x"]`, "application/json"},
		{"/nope", "", 404, "nf", "text/plain;charset=UTF-8"},
	} {
		rec, p, _ := serve(t, src, httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body)))
		if p != "" || rec.Code != tc.status || rec.Body.String() != tc.want || rec.Header().Get("Content-Type") != tc.ct {
			t.Errorf("%s: panic %q status %d body %q type %q, want %d %q %q", tc.path, p, rec.Code, rec.Body, rec.Header().Get("Content-Type"), tc.status, tc.want, tc.ct)
		}
	}
	_, p, _ := serve(t, src, httptest.NewRequest("POST", "/twice", strings.NewReader("x")))
	if !strings.Contains(p, "body already used") {
		t.Errorf("reading a body twice: panic %q", p)
	}
}

// Uncaught exceptions, rejections and promises that never settle panic
// with the script's line.
func TestFaults(t *testing.T) {
	src := `export default {
  async fetch(req) {
    const p = new URL(req.url).pathname;
    if (p === "/throw") throw new Error("boom");
    if (p === "/sync") return this.sync();
    if (p === "/pending") return new Promise(() => {});
    if (p === "/notresponse") return {status: 200};
    return new Response("ok");
  },
  sync() { null.x; },
};`
	for path, want := range map[string][]string{
		"/throw":       {"Uncaught (in promise) Error: boom", "handler.js:4:"},
		"/sync":        {"TypeError", "handler.js:10:"},
		"/pending":     {"never settled"},
		"/notresponse": {"fetch must return a Response"},
	} {
		_, p, _ := serve(t, src, httptest.NewRequest("GET", path, nil))
		for _, w := range want {
			if !strings.Contains(p, w) {
				t.Errorf("%s: panic %q, want it to contain %q", path, p, w)
			}
		}
	}
	if rec, p, _ := serve(t, src, httptest.NewRequest("GET", "/", nil)); p != "" || rec.Body.String() != "ok" {
		t.Errorf("/: %q %q", p, rec.Body)
	}
}

func TestLoadErrors(t *testing.T) {
	for src, want := range map[string]string{
		"export default {\n  fetch(req) {\n    return (;\n  }\n}": "handler.js: Line 3:",
		"throw new Error('at init');":                             "handler.js:1:",
		"const x = 1;":                                            "no `export default",
		"export default {};":                                      "no fetch method",
	} {
		_, err := Load("handler.js", src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%q) = %v, want an error with %q", src, err, want)
		}
	}
}

// The top level runs once, at Load; state it creates persists across
// requests.
func TestStatePersists(t *testing.T) {
	h, err := Load("handler.js", `let n = 0; const atLoad = ++n;
export default { fetch() { n++; return new Response(atLoad + "/" + n); } };`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		got = append(got, rec.Body.String())
	}
	if strings.Join(got, " ") != "1/2 1/3 1/4" {
		t.Errorf("got %q", got)
	}
}
