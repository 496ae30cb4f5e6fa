package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/examples/internal/fn"
	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestCompressRoundTrip(t *testing.T) {
	for _, level := range []int{1, 6, 9} {
		out, err := compress(corpus, level)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		back, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, corpus) {
			t.Errorf("level %d: gunzip does not give the corpus back", level)
		}
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		name, method, target string
		body                 []byte
		in, level            int
	}{
		{"default", http.MethodGet, "/", nil, 1 << 20, 6},
		{"sized", http.MethodGet, "/?size=1000&level=1", nil, 1000, 1},
		{"post", http.MethodPost, "/?level=9", []byte("hello hello hello hello"), 23, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, tc.method, tc.target, tc.body, &got)
			if got.BytesIn != tc.in || got.Level != tc.level || got.BytesOut == 0 {
				t.Errorf("got %+v", got)
			}
			if tc.body != nil {
				want, _ := compress(tc.body, tc.level)
				if got.SHA256 != fn.Digest(want) {
					t.Error("digest does not match the compressed body")
				}
			}
			if tc.name == "default" && (got.Ratio < 2 || got.Ratio > 10) {
				t.Errorf("ratio %v is not realistic", got.Ratio)
			}
		})
	}
	fntest.CheckDeterministic(t, h, "/", "/?level=9&size=5000")
	fntest.CheckBad(t, h, http.MethodGet, "/?level=0", "/?level=10", "/?size=-1", "/?size=99999999")
}
