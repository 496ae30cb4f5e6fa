package main

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestLayers(t *testing.T) {
	x := newTensor(1, 3, 3)
	for i := range x.d {
		x.d[i] = float32(i + 1)
	}
	t.Run("identity kernel", func(t *testing.T) {
		c := &conv{in: 1, out: 1, w: []float32{0, 0, 0, 0, 1, 0, 0, 0, 0}, b: []float32{0.5}}
		got := c.apply(x)
		for i, v := range got.d {
			if v != x.d[i]+0.5 {
				t.Fatalf("out[%d] = %v, want %v", i, v, x.d[i]+0.5)
			}
		}
	})
	t.Run("box kernel pads with zeros", func(t *testing.T) {
		c := &conv{in: 1, out: 1, w: []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}, b: []float32{0}}
		got := c.apply(x)
		// Corner (0,0) sees 1,2,4,5; the centre sees everything.
		if got.at(0, 0, 0) != 12 || got.at(0, 1, 1) != 45 {
			t.Errorf("corner %v centre %v, want 12 45", got.at(0, 0, 0), got.at(0, 1, 1))
		}
	})
	t.Run("maxpool", func(t *testing.T) {
		p := maxPool(&tensor{1, 2, 4, []float32{1, 5, 2, 0, 3, 4, 8, 7}})
		if p.w != 2 || p.h != 1 || p.d[0] != 5 || p.d[1] != 8 {
			t.Errorf("maxpool = %+v", p)
		}
	})
	t.Run("dense", func(t *testing.T) {
		d := &dense{in: 2, out: 2, w: []float32{1, 2, 3, 4}, b: []float32{1, 0}}
		if got := d.apply([]float32{1, 1}); got[0] != 4 || got[1] != 7 {
			t.Errorf("dense = %v", got)
		}
	})
	t.Run("softmax", func(t *testing.T) {
		p := softmax([]float32{1, 2, 3, 1000})
		var sum float64
		for _, v := range p {
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-5 || p[3] < 0.99 {
			t.Errorf("softmax = %v", p)
		}
	})
}

func TestModelSize(t *testing.T) {
	if p := newNetwork(1).params(); p < 2_500_000 || p > 7_500_000 {
		t.Errorf("%d parameters, want 10-30 MB of float32", p)
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	var img bytes.Buffer
	if err := png.Encode(&img, image.NewGray(image.Rect(0, 0, 100, 80))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, target string
		body                 []byte
		top                  int
	}{
		{"default", http.MethodGet, "/", nil, 5},
		{"seed", http.MethodGet, "/?seed=7&top=3", nil, 3},
		{"upload", http.MethodPost, "/", img.Bytes(), 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, tc.method, tc.target, tc.body, &got)
			if len(got.Top) != tc.top {
				t.Fatalf("got %d classes, want %d", len(got.Top), tc.top)
			}
			for i := 1; i < len(got.Top); i++ {
				if got.Top[i].Probability > got.Top[i-1].Probability {
					t.Errorf("classes are not sorted: %+v", got.Top)
				}
			}
		})
	}
	fntest.CheckDeterministic(t, h, "/", "/?seed=3")
	fntest.CheckBad(t, h, http.MethodGet, "/?top=0", "/?top=1001", "/?seed=x")
	fntest.CheckBad(t, h, http.MethodPost, "/")
}
