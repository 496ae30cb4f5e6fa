package main

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"net/http"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// The clip: 96 RGB frames of 160x120 (5.5 MB), generated at init as a
// decoded video would sit in memory. Frame i shows a few moving balls over
// a noisy background, so consecutive frames differ where the balls move.
const (
	width, height = 160, 120
	clipFrames    = 96
)

// video is a sequence of packed RGB frames.
type video [][]byte

// makeClip renders the clip from a seeded generator.
func makeClip() video {
	rng := rand.New(rand.NewPCG(24, 25))
	type ball struct{ x, y, vx, vy, r float64 }
	inside := func(x, y int, b ball) bool {
		dx, dy := float64(x)-b.x, float64(y)-b.y
		return dx*dx+dy*dy < b.r*b.r
	}
	balls := make([]ball, 4)
	for i := range balls {
		balls[i] = ball{rng.Float64() * width, rng.Float64() * height, rng.Float64()*6 - 3, rng.Float64()*4 - 2, 8 + rng.Float64()*10}
	}
	noise := make([]byte, width*height*3)
	for i := range noise {
		noise[i] = uint8(rng.IntN(24))
	}
	clip := make(video, clipFrames)
	for f := range clip {
		fr := make([]byte, width*height*3)
		for y := range height {
			for x := range width {
				o := (y*width + x) * 3
				fr[o], fr[o+1], fr[o+2] = 40+noise[o], 60+noise[o+1], 90+noise[o+2]
				for i, b := range balls {
					if inside(x, y, b) {
						fr[o], fr[o+1], fr[o+2] = uint8(200+i*10), uint8(50*i), 30
					}
				}
			}
		}
		for i := range balls {
			b := &balls[i]
			b.x, b.y = b.x+b.vx, b.y+b.vy
			if b.x < 0 || b.x > width {
				b.vx = -b.vx
			}
			if b.y < 0 || b.y > height {
				b.vy = -b.vy
			}
		}
		clip[f] = fr
	}
	return clip
}

// gray converts a packed RGB frame to luma (ITU-R BT.601 weights).
func gray(rgb []byte) []byte {
	out := make([]byte, len(rgb)/3)
	for i := range out {
		r, g, b := uint32(rgb[3*i]), uint32(rgb[3*i+1]), uint32(rgb[3*i+2])
		out[i] = uint8((299*r + 587*g + 114*b + 500) / 1000)
	}
	return out
}

// blur is a 3x3 box blur; edge pixels average the neighbours that exist.
func blur(src []byte, w, h int) []byte {
	out := make([]byte, len(src))
	// Interior pixels have all nine neighbours: sum them without checks.
	for y := 1; y < h-1; y++ {
		a, b, c := src[(y-1)*w:y*w], src[y*w:(y+1)*w], src[(y+1)*w:(y+2)*w]
		o := out[y*w : (y+1)*w]
		for x := 1; x < w-1; x++ {
			sum := int(a[x-1]) + int(a[x]) + int(a[x+1]) + int(b[x-1]) + int(b[x]) + int(b[x+1]) +
				int(c[x-1]) + int(c[x]) + int(c[x+1])
			o[x] = uint8((sum + 4) / 9)
		}
	}
	for y := range h {
		for x := range w {
			if x > 0 && x < w-1 && y > 0 && y < h-1 {
				continue
			}
			sum, n := 0, 0
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if xx, yy := x+dx, y+dy; xx >= 0 && xx < w && yy >= 0 && yy < h {
						sum += int(src[yy*w+xx])
						n++
					}
				}
			}
			out[y*w+x] = uint8((sum + n/2) / n)
		}
	}
	return out
}

// diff returns the mean absolute difference of two frames and how many
// pixels differ by more than threshold.
func diff(a, b []byte, threshold int) (mean float64, moved int) {
	total := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		total += d
		if d > threshold {
			moved++
		}
	}
	return float64(total) / float64(len(a)), moved
}

// result is video_frames's JSON answer.
type result struct {
	Frames       int       `json:"frames"`
	MeanDiff     []float64 `json:"mean_diff"`
	MotionFrames int       `json:"motion_frames"`
	SHA256       string    `json:"sha256"` // of every processed frame
}

// Handler processes ?frames= frames (default 32) starting at ?start=
// (default 0): grey, blur, and difference against the previous frame. A
// frame "has motion" when over ?min_pixels= (default 100) pixels changed by
// more than 16 levels.
func Handler() http.Handler {
	clip := makeClip()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		start, err := fn.Int(r, "start", 0, 0, clipFrames-1)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		n, err := fn.Int(r, "frames", 32, 1, clipFrames)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		if start+n > clipFrames {
			fn.Error(w, http.StatusBadRequest, "frames %d..%d are past the clip's %d frames", start, start+n-1, clipFrames)
			return
		}
		minPixels, err := fn.Int(r, "min_pixels", 100, 0, width*height)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		res := result{Frames: n, MeanDiff: []float64{}}
		sum := sha256.New()
		var prev []byte
		for _, fr := range clip[start : start+n] {
			cur := blur(gray(fr), width, height)
			sum.Write(cur)
			if prev != nil {
				m, moved := diff(prev, cur, 16)
				res.MeanDiff = append(res.MeanDiff, math.Round(m*1000)/1000)
				if moved > minPixels {
					res.MotionFrames++
				}
			}
			prev = cur
		}
		res.SHA256 = hex.EncodeToString(sum.Sum(nil))
		fn.JSON(w, res)
	})
}
