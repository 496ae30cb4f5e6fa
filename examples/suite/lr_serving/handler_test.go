package main

import (
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestTokens(t *testing.T) {
	if got, want := tokens("Hello, WORLD! it's 42"), []string{"hello", "world", "it", "s", "42"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tokens = %q, want %q", got, want)
	}
}

func TestPredict(t *testing.T) {
	m := newModel()
	// With every weight zero the probability is sigmoid(bias) whatever the text.
	zero := &model{w: make([]float64, features), bias: 0}
	if p, n := zero.predict("a b c"); p != 0.5 || n != 3 {
		t.Errorf("zero model: p=%v n=%d, want 0.5, 3", p, n)
	}
	// One token: z = bias + w[hash(tok)].
	p, _ := m.predict("excellent")
	if want := sigmoid(m.bias + m.w[hash("excellent")]); math.Abs(p-want) > 1e-12 {
		t.Errorf("single token p=%v, want %v", p, want)
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		name, method, target, body string
		tokens                     int
	}{
		{"default", http.MethodGet, "/", "", len(tokens(defaultReview))},
		{"query", http.MethodGet, "/?text=great+product", "", 2},
		{"post", http.MethodPost, "/", "terrible, would not buy again", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			var got result
			fntest.DoJSON(t, h, tc.method, tc.target, body, &got)
			if got.Tokens != tc.tokens || got.Probability <= 0 || got.Probability >= 1 ||
				(got.Label == "positive") != (got.Probability >= 0.5) {
				t.Errorf("got %+v", got)
			}
		})
	}
	fntest.CheckDeterministic(t, h, "/", "/?text=so-so")
	fntest.CheckBad(t, h, http.MethodGet, "/?text="+strings.Repeat("a", 1<<20+1))
	fntest.CheckBad(t, h, http.MethodPut, "/")
}
