package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestDocument(t *testing.T) {
	if n := len(document); n < 80_000 || n > 160_000 {
		t.Errorf("document is %d bytes, want about 100 KB", n)
	}
	if !json.Valid(document) {
		t.Error("document is not valid JSON")
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		name, method, target, body string
		values                     int
		out                        string
	}{
		{"post", http.MethodPost, "/", `{"b": [1, 2, {"c": null}], "a": "x"}`, 7, `{"a":"x","b":[1,2,{"c":null}]}`},
		{"post repeat", http.MethodPost, "/?repeat=3", `[true, 1.5]`, 3, `[true,1.5]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, tc.method, tc.target, []byte(tc.body), &got)
			if got.Values != tc.values || got.BytesOut != len(tc.out) {
				t.Errorf("got %+v, want %d values, %d bytes out", got, tc.values, len(tc.out))
			}
		})
	}
	t.Run("default", func(t *testing.T) {
		var got result
		fntest.DoJSON(t, h, http.MethodGet, "/", nil, &got)
		if got.BytesIn != len(document) || got.Values < 5000 || got.BytesOut >= got.BytesIn {
			t.Errorf("got %+v", got)
		}
	})
	fntest.CheckDeterministic(t, h, "/", "/?repeat=2")
	fntest.CheckBad(t, h, http.MethodGet, "/?repeat=0", "/?repeat=x")
	fntest.CheckBad(t, h, http.MethodPost, "/")
}
