package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/examples/warmup/internal/curve"
)

func get(t *testing.T, h http.Handler, target string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Body.Bytes()
}

// TestTemplates renders every template once and checks the escaper did its
// job in each context.
func TestTemplates(t *testing.T) {
	for i := range numTemplates {
		tmpl := template.Must(template.New("x").Funcs(funcs).Parse(source(i)))
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data(i, 5)); err != nil {
			t.Fatalf("template %d: %v", i, err)
		}
		out := buf.String()
		if strings.Contains(out, "<"+fmt.Sprint(i)+">") || !strings.Contains(out, "&lt;"+fmt.Sprint(i)+"&gt;") {
			t.Fatalf("template %d: title not HTML-escaped:\n%s", i, out[:200])
		}
	}
}

func TestPick(t *testing.T) {
	seen := map[int]bool{}
	for k := 1; k <= 300; k++ {
		p := pick(k, false)
		if p < 0 || p >= numTemplates || p != pick(k, false) {
			t.Fatalf("pick(%d) = %d", k, p)
		}
		seen[p] = true
	}
	// Skewed but not degenerate: many templates, far from all of them.
	if len(seen) < 20 || len(seen) > 250 {
		t.Errorf("300 requests used %d templates", len(seen))
	}
	if pick(205, true) != 5 {
		t.Errorf("round robin pick(205) = %d, want 5", pick(205, true))
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target string
		status int
	}{{"/?k=3", 200}, {"/?k=3&items=0", 200}, {"/?order=roundrobin&k=7", 200},
		{"/?items=-1", 400}, {"/?k=x", 400}, {"/?order=lru", 400}} {
		t.Run(tc.target, func(t *testing.T) {
			if code, body := get(t, h, tc.target); code != tc.status {
				t.Errorf("status %d, want %d: %s", code, tc.status, body)
			}
		})
	}
	// With ?k= the answer is the same on a fresh instance and a warm one.
	_, warm := get(t, h, "/?k=11")
	_, cold := get(t, Handler(), "/?k=11")
	if !bytes.Equal(warm, cold) {
		t.Errorf("k=11: warm %s, cold %s", warm, cold)
	}
	// Without ?k= the instance's count is k.
	fresh := Handler()
	get(t, fresh, "/")
	_, body := get(t, fresh, "/")
	var r result
	if err := json.Unmarshal(body, &r); err != nil || r.K != 2 || r.Template != pick(2, false) {
		t.Errorf("second request: %s (%v)", body, err)
	}
}

// TestCurve serves 300 requests (k = 1..300) to a fresh instance, checks
// each matches a cold instance's answer for a sample, and logs the curve
// (go test -v -run Curve).
func TestCurve(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 20
	}
	for _, order := range []string{"zipf", "roundrobin"} {
		var runs [][]curve.Result
		for range 3 {
			rs := curve.Measure(Handler(), n, func(int) string { return "/?order=" + order })
			for i, r := range rs {
				if r.Status != 200 {
					t.Fatalf("request %d: status %d: %s", i+1, r.Status, r.Body)
				}
			}
			_, cold := get(t, Handler(), fmt.Sprintf("/?order=%s&k=%d", order, n))
			if !bytes.Equal(rs[n-1].Body, cold) {
				t.Errorf("%s: request %d differs from a cold instance's answer", order, n)
			}
			runs = append(runs, rs)
		}
		t.Log("\n" + curve.Header() + "\n" + curve.Table("templates ("+order+")", runs...))
	}
}
