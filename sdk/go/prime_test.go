package thaw

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPrime: a primed request reaches the handler as the host would send
// it (method, escaped path, query, headers, host, body), through the SDK's
// buffers, whose sizes the snapshot then keeps; a panicking prime is
// discarded. (TestPrepareSnapshot: when they are served.)
func TestPrime(t *testing.T) {
	defer func() { primes = nil }()
	var seen []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("prime panics")
		}
		rec := httptest.NewRecorder()
		echo.ServeHTTP(rec, r)
		seen = append(seen, rec.Body.String())
		w.Write([]byte(strings.Repeat("x", 10000)))
	})
	r := httptest.NewRequest("POST", "http://fn.example/a%20b?q=x%20y", strings.NewReader("data"))
	r.Header.Set("User-Agent", "t")
	Prime(r)
	Prime(httptest.NewRequest("GET", "/panic", nil))
	Prime(httptest.NewRequest("GET", "/?q=2", nil))
	var b buffers
	servePrimes(h, &b)
	want := []string{
		`POST /a%20b?q=x%20y path="/a b" query="x y" host="fn.example" ua="t" multi=[] len=4 body="data"`,
		`GET /?q=2 path="/" query="2" host="example.com" ua="" multi=[] len=0 body=""`,
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("primes served:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	if cap(b.resp) < 10000 {
		t.Fatalf("response buffer of %d bytes after priming, want the prime's 10000 and more", cap(b.resp))
	}
}

// TestPrepareSnapshot: the hook before a snapshot serves the primes,
// collects, and serves them again, so the snapshot has the allocator's
// caches of a warm instance; a later snapshot of the same instance only
// collects.
func TestPrepareSnapshot(t *testing.T) {
	defer func() { primes, primed = nil, false }()
	var steps []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { steps = append(steps, "serve "+r.URL.Path) })
	collect := func() { steps = append(steps, "collect") }
	Prime(httptest.NewRequest("GET", "/a", nil))
	Prime(httptest.NewRequest("GET", "/b", nil))
	var b buffers
	prepareSnapshot(h, &b, collect)
	prepareSnapshot(h, &b, collect)
	want := "serve /a, serve /b, collect, serve /a, serve /b, collect"
	if got := strings.Join(steps, ", "); got != want {
		t.Fatalf("steps: %s\nwant:  %s", got, want)
	}
}

// TestPrimeRejectsNil: a nil request (http.NewRequest's on a bad URL)
// panics at registration, in init, where the deploy reports it.
func TestPrimeRejectsNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Prime(nil) did not panic")
		}
	}()
	Prime(nil)
}
