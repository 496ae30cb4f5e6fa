package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct{ target, want string }{
		{"/", "Hello, world!"},
		{"/?name=thaw", "Hello, thaw!"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			var got struct{ Message string }
			fntest.DoJSON(t, h, http.MethodGet, tc.target, nil, &got)
			if got.Message != tc.want {
				t.Errorf("message %q, want %q", got.Message, tc.want)
			}
		})
	}
	fntest.CheckDeterministic(t, h, "/", "/?name=x")
	fntest.CheckBad(t, h, http.MethodGet, "/?name="+strings.Repeat("a", 300))
	fntest.CheckBad(t, h, http.MethodDelete, "/")
}
