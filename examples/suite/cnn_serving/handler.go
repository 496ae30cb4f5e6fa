package main

import (
	"bytes"
	"image"
	_ "image/jpeg" // decode JPEG uploads
	_ "image/png"  // decode PNG uploads
	"math"
	"math/rand/v2"
	"net/http"
	"sort"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// prediction is one of the top classes.
type prediction struct {
	Class       int     `json:"class"`
	Probability float64 `json:"probability"`
}

// result is cnn_serving's JSON answer.
type result struct {
	Top []prediction `json:"top"`
}

// Handler classifies a 64x64 RGB image and returns the ?top= (default 5)
// most likely of 1000 classes. GET synthesises the image from ?seed=
// (default 1); POST takes a PNG or JPEG, scaled to 64x64 by sampling.
func Handler() http.Handler {
	net := newNetwork(1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		top, err := fn.Int(r, "top", 5, 1, classes)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		var x *tensor
		if r.Method == http.MethodPost {
			body, err := fn.Body(r)
			if err != nil {
				fn.Error(w, http.StatusRequestEntityTooLarge, "%v", err)
				return
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(body))
			if err != nil || cfg.Width*cfg.Height > 16<<20 {
				fn.Error(w, http.StatusBadRequest, "body must be a PNG or JPEG of at most 16 Mpixels")
				return
			}
			img, _, err := image.Decode(bytes.NewReader(body))
			if err != nil {
				fn.Error(w, http.StatusBadRequest, "decode image: %v", err)
				return
			}
			x = fromImage(img)
		} else {
			seed, err := fn.Int(r, "seed", 1, 0, 1<<31)
			if err != nil {
				fn.Error(w, http.StatusBadRequest, "%v", err)
				return
			}
			x = synthetic(uint64(seed))
		}
		probs := net.forward(x)
		idx := make([]int, len(probs))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
		res := result{Top: make([]prediction, top)}
		for i := range top {
			res.Top[i] = prediction{Class: idx[i], Probability: math.Round(float64(probs[idx[i]])*1e6) / 1e6}
		}
		fn.JSON(w, res)
	})
}

// fromImage samples img onto a 64x64 grid and scales channels to [0, 1].
func fromImage(img image.Image) *tensor {
	b := img.Bounds()
	x := newTensor(3, inputSize, inputSize)
	for y := range inputSize {
		for xx := range inputSize {
			r, g, bl, _ := img.At(b.Min.X+xx*b.Dx()/inputSize, b.Min.Y+y*b.Dy()/inputSize).RGBA()
			for c, v := range []uint32{r, g, bl} {
				x.d[(c*inputSize+y)*inputSize+xx] = float32(v) / 0xffff
			}
		}
	}
	return x
}

// synthetic returns a seeded image: smooth blobs plus noise in [0, 1].
func synthetic(seed uint64) *tensor {
	rng := rand.New(rand.NewPCG(seed, 64))
	x := newTensor(3, inputSize, inputSize)
	for c := range 3 {
		fx, fy, ph := 1+rng.Float64()*6, 1+rng.Float64()*6, rng.Float64()*math.Pi
		for y := range inputSize {
			for xx := range inputSize {
				v := 0.5 + 0.4*math.Sin(fx*float64(xx)/inputSize*math.Pi+ph)*math.Cos(fy*float64(y)/inputSize*math.Pi) + 0.1*rng.Float64()
				x.d[(c*inputSize+y)*inputSize+xx] = float32(v)
			}
		}
	}
	return x
}
