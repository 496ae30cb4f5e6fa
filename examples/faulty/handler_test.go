package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// Only the routes that are safe in a native test process run here; the
// module-level behaviour of every route is tested against wazero in
// internal/abi.
func TestSafeRoutes(t *testing.T) {
	cases := []struct {
		path      string
		wantCode  int
		wantPanic string
	}{
		{"/ok", 200, ""},
		{"/spin?ms=5", 200, ""},
		{"/missing", 404, ""},
		{"/panic", 0, "deliberate panic"},
		{"/nil", 0, "nil pointer dereference"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			func() {
				defer func() {
					r := recover()
					if c.wantPanic == "" && r != nil {
						t.Fatalf("unexpected panic %v", r)
					}
					if c.wantPanic != "" && (r == nil || !strings.Contains(toString(r), c.wantPanic)) {
						t.Fatalf("panic %v, want one containing %q", r, c.wantPanic)
					}
				}()
				Handler().ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
			}()
			if c.wantPanic == "" && rec.Code != c.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, c.wantCode)
			}
		})
	}
}

func toString(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	s, _ := v.(string)
	return s
}
