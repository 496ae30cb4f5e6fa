// Package jstemplates is a thaw warm-up workload in JavaScript: handler.js
// (page templates compiled on first use), built as thaw build builds a
// JavaScript function. This test runs it natively, in sdk/js.
package jstemplates

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	thawjs "github.com/thaw-run/thaw/sdk/js"
)

// script is the function, which thaw build (and testwasm) builds from
// this directory's handler.js.
//
//go:embed handler.js
var script string

type result struct {
	K, Template, Bytes int
	Checksum           string
	Error              string
}

func get(t *testing.T, h *thawjs.Handler, target string) (int, result) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	var r result
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("%s: %v: %s", target, err, rec.Body)
	}
	return rec.Code, r
}

// Answers depend on k only, compiled or not; the default k is the
// request count; bad parameters are 400s; and a template's first use
// (compiling) costs several times a later one.
func TestHandler(t *testing.T) {
	a, b := thawjs.MustLoad("handler.js", script), thawjs.MustLoad("handler.js", script)
	_, first := get(t, a, "/?k=7")
	_, again := get(t, a, "/?k=7")
	_, fresh := get(t, b, "/?k=7")
	if first != again || first != fresh || first.Bytes < 2000 || len(first.Checksum) != 8 {
		t.Errorf("k=7: %+v, again %+v, fresh instance %+v", first, again, fresh)
	}
	if _, r := get(t, b, "/"); r.K != 2 {
		t.Errorf("second request's default k = %d, want 2", r.K)
	}
	for _, bad := range []string{"/?items=-1", "/?k=x", "/?items=1.5"} {
		if code, r := get(t, a, bad); code != 400 || r.Error == "" {
			t.Errorf("%s: %d %+v", bad, code, r)
		}
	}
	seen := map[int]bool{}
	for k := range 300 {
		_, r := get(t, b, fmt.Sprintf("/?k=%d", k))
		seen[r.Template] = true
	}
	if len(seen) < 50 || !seen[0] {
		t.Errorf("300 requests used %d templates, want a skewed spread of at least 50 including 0", len(seen))
	}
	cold, warm := time.Duration(0), time.Duration(0)
	c := thawjs.MustLoad("handler.js", script)
	for k := 1000; k < 1020; k++ {
		target := fmt.Sprintf("/?k=%d", k)
		t0 := time.Now()
		get(t, c, target)
		t1 := time.Now()
		get(t, c, target)
		cold, warm = cold+t1.Sub(t0), warm+time.Since(t1)
	}
	if cold < 3*warm {
		t.Errorf("first uses took %v, second %v: want compiling to cost at least 3x rendering", cold, warm)
	}
	t.Logf("20 first uses %v, 20 second uses %v", cold, warm)
}
