package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	cases := []struct {
		name, method, body string
		wantStatus         int
		wantBody           string
	}{
		{"transforms", "POST", `{"z":"abc","a":[1,2.5,"x",{"k":"v","n":-3}],"t":true,"nil":null}`, 200,
			`{"doc":{"a":[1,2.5,"X",{"k":"V","n":-3}],"nil":null,"t":true,"z":"ABC"},"numbers":3,"sum":0.5,"strings":3,"depth":4}` + "\n"},
		{"keeps big numbers verbatim", "POST", `[12345678901234567890]`, 200,
			`{"doc":[12345678901234567890],"numbers":1,"sum":12345678901234567000,"strings":0,"depth":2}` + "\n"},
		{"scalar document", "POST", `"hi"`, 200, `{"doc":"HI","numbers":0,"sum":0,"strings":1,"depth":1}` + "\n"},
		{"bad JSON", "POST", `{"a":`, 400, ""},
		{"empty body", "POST", ``, 400, ""},
		{"trailing data", "POST", `{} {}`, 400, ""},
		{"GET", "GET", ``, 405, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler().ServeHTTP(rec, httptest.NewRequest(c.method, "/", strings.NewReader(c.body)))
			if rec.Code != c.wantStatus {
				t.Fatalf("status %d, want %d (%s)", rec.Code, c.wantStatus, rec.Body)
			}
			if c.wantBody != "" && rec.Body.String() != c.wantBody {
				t.Fatalf("body\n%s\nwant\n%s", rec.Body, c.wantBody)
			}
		})
	}
}

// Equal documents, however their keys are ordered, give equal bytes: the
// platform's tests compare booted and restored instances byte for byte.
func TestDeterministic(t *testing.T) {
	a, b := `{"x":1,"y":{"b":"q","a":"r"}}`, `{"y":{"a":"r","b":"q"},"x":1}`
	var out []string
	for _, doc := range []string{a, b, a} {
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(doc)))
		out = append(out, rec.Body.String())
	}
	if out[0] != out[1] || out[1] != out[2] {
		t.Fatalf("outputs differ: %q", out)
	}
}
