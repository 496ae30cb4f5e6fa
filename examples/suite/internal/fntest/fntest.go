// Package fntest holds the httptest helpers the suite's handler tests share.
package fntest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Do serves one request to h and returns the recorded response. body may
// be nil.
func Do(t testing.TB, h http.Handler, method, target string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, rd))
	return rec
}

// DoJSON serves a request that must succeed with 200 and decodes its JSON
// body into v. It returns the raw body.
func DoJSON(t testing.TB, h http.Handler, method, target string, body []byte, v any) []byte {
	t.Helper()
	rec := Do(t, h, method, target, body)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, target, rec.Code, rec.Body.String())
	}
	if v != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, target, rec.Body.String(), err)
		}
	}
	return rec.Body.Bytes()
}

// CheckDeterministic serves each target twice to h and fails unless both
// answers are 200 and byte-identical.
func CheckDeterministic(t *testing.T, h http.Handler, targets ...string) {
	t.Helper()
	for _, target := range targets {
		a := DoJSON(t, h, http.MethodGet, target, nil, nil)
		b := DoJSON(t, h, http.MethodGet, target, nil, nil)
		if !bytes.Equal(a, b) {
			t.Errorf("GET %s is not deterministic:\n%s\n%s", target, a, b)
		}
	}
}

// CheckBad fails unless every target answers with a 4xx status.
func CheckBad(t *testing.T, h http.Handler, method string, targets ...string) {
	t.Helper()
	for _, target := range targets {
		rec := Do(t, h, method, target, nil)
		if rec.Code < 400 || rec.Code > 499 {
			t.Errorf("%s %s: status %d, want 4xx (%s)", method, target, rec.Code, rec.Body.String())
		}
	}
}
