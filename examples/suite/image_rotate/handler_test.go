package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestRotate(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := range src.Pix {
		src.Pix[i] = uint8(i)
	}
	r := rotate90(src)
	if r.Rect.Dx() != 2 || r.Rect.Dy() != 3 {
		t.Fatalf("rotated bounds %v, want 2x3", r.Rect)
	}
	// Clockwise: the source's bottom-left corner becomes the top-left.
	if got, want := r.RGBAAt(0, 0), src.RGBAAt(0, 1); got != want {
		t.Errorf("top-left %v, want %v", got, want)
	}
	if got, want := r.RGBAAt(1, 0), src.RGBAAt(0, 0); got != want {
		t.Errorf("top-right %v, want %v", got, want)
	}
	full := toRGBA(src)
	for range 4 {
		full = rotate90(full)
	}
	if !bytes.Equal(full.Pix, src.Pix) {
		t.Error("four rotations are not the identity")
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	small := image.NewRGBA(image.Rect(0, 0, 5, 3))
	small.SetRGBA(4, 0, color.RGBA{R: 255, A: 255})
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, small); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, target string
		body                 []byte
		w, h                 int
		format               string
	}{
		{"default", http.MethodGet, "/", nil, 480, 640, "jpeg"},
		{"zero turns", http.MethodGet, "/?turns=0", nil, 640, 480, "jpeg"},
		{"png", http.MethodPost, "/", pngBuf.Bytes(), 3, 5, "png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, tc.method, tc.target, tc.body, &got)
			if got.Width != tc.w || got.Height != tc.h || got.Format != tc.format {
				t.Errorf("got %+v, want %dx%d %s", got, tc.w, tc.h, tc.format)
			}
		})
	}
	t.Run("png pixels", func(t *testing.T) {
		rec := fntest.Do(t, h, http.MethodPost, "/?format=image", pngBuf.Bytes())
		img, err := png.Decode(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		// The red top-right pixel of a 5x3 image lands bottom-right of 3x5.
		if r, _, _, _ := img.At(2, 4).RGBA(); r != 0xffff {
			t.Errorf("pixel (2,4) is not red")
		}
	})
	fntest.CheckDeterministic(t, h, "/", "/?turns=3")
	fntest.CheckBad(t, h, http.MethodGet, "/?turns=4", "/?turns=x")
	fntest.CheckBad(t, h, http.MethodPost, "/")
}
