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
		name, method, target, body string
		rows, cols                 int
	}{
		{"default", http.MethodGet, "/", "", 200, 10},
		{"small", http.MethodGet, "/?rows=3&cols=2", "", 3, 2},
		{"post", http.MethodPost, "/", `[["a","b","c"],["d","e","f"]]`, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			var got result
			fntest.DoJSON(t, h, tc.method, tc.target, body, &got)
			if got.Rows != tc.rows || got.Cols != tc.cols || got.Bytes == 0 || len(got.SHA256) != 64 {
				t.Errorf("got %+v, want %d x %d", got, tc.rows, tc.cols)
			}
		})
	}
	t.Run("html", func(t *testing.T) {
		rec := fntest.Do(t, h, http.MethodGet, "/?rows=2&cols=2&format=html", nil)
		page := rec.Body.String()
		if rec.Code != http.StatusOK || strings.Count(page, "<tr") != 2 || strings.Count(page, "<td>") != 4 {
			t.Fatalf("status %d, page:\n%s", rec.Code, page)
		}
		if strings.Contains(page, "<cell") || !strings.Contains(page, "&lt;cell 1,1&gt; &amp; &#34;q&#34;") {
			t.Errorf("cells are not escaped:\n%s", page)
		}
	})
	fntest.CheckDeterministic(t, h, "/", "/?rows=50&cols=50")
	fntest.CheckBad(t, h, http.MethodGet, "/?rows=0", "/?rows=x", "/?cols=1000", "/?rows=100000")
	fntest.CheckBad(t, h, http.MethodPost, "/")
	fntest.CheckBad(t, h, http.MethodPut, "/")
}
