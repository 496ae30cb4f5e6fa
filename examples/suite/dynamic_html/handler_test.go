package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		name, target, user string
		numbers            int
	}{
		{"default", "/", "thaw", 1000},
		{"named", "/?username=ada&random_len=10", "ada", 10},
		{"empty", "/?random_len=0", "thaw", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, http.MethodGet, tc.target, nil, &got)
			if got.Username != tc.user || got.Numbers != tc.numbers || (tc.numbers == 0) != (got.Sum == 0) {
				t.Errorf("got %+v", got)
			}
		})
	}
	t.Run("html", func(t *testing.T) {
		rec := fntest.Do(t, h, http.MethodGet, "/?username=<b>&random_len=5&format=html", nil)
		page := rec.Body.String()
		if strings.Count(page, "<li>") != 5 || !strings.Contains(page, "Welcome &lt;b&gt;!") {
			t.Errorf("page:\n%s", page)
		}
	})
	t.Run("seed changes numbers", func(t *testing.T) {
		var a, b result
		fntest.DoJSON(t, h, http.MethodGet, "/?seed=1", nil, &a)
		fntest.DoJSON(t, h, http.MethodGet, "/?seed=2", nil, &b)
		if a.Sum == b.Sum {
			t.Error("different seeds gave the same numbers")
		}
	})
	fntest.CheckDeterministic(t, h, "/", "/?username=x&random_len=50&seed=4")
	fntest.CheckBad(t, h, http.MethodGet, "/?random_len=-1", "/?random_len=1000000", "/?seed=x",
		"/?username="+strings.Repeat("u", 300))
}
