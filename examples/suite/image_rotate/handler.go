package main

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// sample is the default input: a 640x480 JPEG generated and encoded at init,
// standing in for the image file FunctionBench ships. Encoding it at init
// puts the compressed bytes in the snapshot, as a bundled file would be.
var sample = makeSample(640, 480)

// maxPixels bounds decoded uploads.
const maxPixels = 16 << 20

// result is image_rotate's JSON answer; ?format=image returns the image.
type result struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"`
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Handler rotates an image clockwise by 90° ?turns= times (default 1). GET
// uses the built-in sample JPEG; POST takes a PNG or JPEG body. The output
// has the input's format.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		turns, err := fn.Int(r, "turns", 1, 0, 3)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		in := sample
		if r.Method == http.MethodPost {
			if in, err = fn.Body(r); err != nil {
				fn.Error(w, http.StatusRequestEntityTooLarge, "%v", err)
				return
			}
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(in))
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "not a PNG or JPEG image: %v", err)
			return
		}
		if cfg.Width*cfg.Height > maxPixels {
			fn.Error(w, http.StatusBadRequest, "image has more than %d pixels", maxPixels)
			return
		}
		img, _, err := image.Decode(bytes.NewReader(in))
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "decode %s: %v", format, err)
			return
		}
		out := toRGBA(img)
		for range turns {
			out = rotate90(out)
		}
		var buf bytes.Buffer
		if format == "png" {
			err = png.Encode(&buf, out)
		} else {
			err = jpeg.Encode(&buf, out, &jpeg.Options{Quality: 90})
		}
		if err != nil {
			fn.Error(w, http.StatusInternalServerError, "encode: %v", err)
			return
		}
		if r.URL.Query().Get("format") == "image" {
			w.Header().Set("Content-Type", "image/"+format)
			_, _ = w.Write(buf.Bytes())
			return
		}
		b := out.Bounds()
		fn.JSON(w, result{Width: b.Dx(), Height: b.Dy(), Format: format, Bytes: buf.Len(), SHA256: fn.Digest(buf.Bytes())})
	})
}

// toRGBA converts img to an RGBA image whose bounds start at (0,0).
func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
	return dst
}

// rotate90 returns src rotated clockwise by 90°: pixel (x, y) moves to
// (h-1-y, x).
func rotate90(src *image.RGBA) *image.RGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dst := image.NewRGBA(image.Rect(0, 0, h, w))
	for y := range h {
		row := src.Pix[y*src.Stride : y*src.Stride+4*w]
		for x := range w {
			o := x*dst.Stride + 4*(h-1-y)
			copy(dst.Pix[o:o+4], row[4*x:4*x+4])
		}
	}
	return dst
}

// makeSample draws a deterministic w x h picture (gradients, rings and a
// grid, so JPEG has edges and texture to encode) and returns it as a JPEG.
func makeSample(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy := float64(w)/2, float64(h)/2
	for y := range h {
		for x := range w {
			d := math.Hypot(float64(x)-cx, float64(y)-cy)
			c := color.RGBA{
				R: uint8(255 * x / w),
				G: uint8(127 + 127*math.Sin(d/9)),
				B: uint8(255 * y / h),
				A: 255,
			}
			if x%40 == 0 || y%40 == 0 {
				c = color.RGBA{A: 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
