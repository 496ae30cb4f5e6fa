package main

import (
	"io"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	cases := []struct{ method, target, want string }{
		{"GET", "/", "hello, world (GET /)\n"},
		{"GET", "/?name=thaw", "hello, thaw (GET /)\n"},
		{"POST", "/x/y?name=a%20b", "hello, a b (POST /x/y)\n"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler().ServeHTTP(rec, httptest.NewRequest(c.method, c.target, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != 200 || string(body) != c.want {
				t.Fatalf("got %d %q, want 200 %q", rec.Code, body, c.want)
			}
		})
	}
}
