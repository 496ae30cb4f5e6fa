package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	cases := []struct {
		name, method, target, body string
		wantStatus                 int
		wantBody                   string
	}{
		{"hello", "GET", "/hello/thaw", "", 200, `{"message":"hello, thaw"}` + "\n"},
		{"stats", "POST", "/stats", `{"numbers":[3,1,2.5]}`, 200,
			`{"count":3,"sum":6.5,"mean":2.1666666666666665,"min":1,"max":3}` + "\n"},
		{"one number", "POST", "/stats", `{"numbers":[-4]}`, 200, `{"count":1,"sum":-4,"mean":-4,"min":-4,"max":-4}` + "\n"},
		{"no numbers", "POST", "/stats", `{"numbers":[]}`, 400, `{"error":"numbers: want at least one"}` + "\n"},
		{"bad JSON", "POST", "/stats", `{"numbers":`, 400, `{"error":"bad JSON: unexpected EOF"}` + "\n"},
		{"unknown field", "POST", "/stats", `{"nums":[1]}`, 400, `{"error":"bad JSON: json: unknown field \"nums\""}` + "\n"},
		{"trailing data", "POST", "/stats", `{"numbers":[1]} {}`, 400, `{"error":"bad JSON: trailing data after the object"}` + "\n"},
		{"wrong method", "GET", "/stats", "", 405, ""},
		{"unknown path", "GET", "/nope", "", 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler().ServeHTTP(rec, httptest.NewRequest(c.method, c.target, strings.NewReader(c.body)))
			if rec.Code != c.wantStatus {
				t.Fatalf("status %d, want %d (%s)", rec.Code, c.wantStatus, rec.Body)
			}
			if c.wantBody != "" && rec.Body.String() != c.wantBody {
				t.Fatalf("body\n%s\nwant\n%s", rec.Body, c.wantBody)
			}
		})
	}
}
