package main

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/examples/suite/internal/fntest"
)

func TestFilters(t *testing.T) {
	t.Run("gray", func(t *testing.T) {
		got := gray([]byte{255, 255, 255, 0, 0, 0, 255, 0, 0})
		if !bytes.Equal(got, []byte{255, 0, 76}) {
			t.Errorf("gray = %v", got)
		}
	})
	t.Run("blur flat", func(t *testing.T) {
		flat := bytes.Repeat([]byte{7}, 12)
		if got := blur(flat, 4, 3); !bytes.Equal(got, flat) {
			t.Errorf("blur of a flat frame = %v", got)
		}
	})
	t.Run("blur spot", func(t *testing.T) {
		spot := make([]byte, 9)
		spot[4] = 90
		got := blur(spot, 3, 3)
		// The centre averages 9 pixels; a corner averages 4 of which one is lit.
		if got[4] != 10 || got[0] != 23 {
			t.Errorf("blur = %v", got)
		}
	})
	t.Run("diff", func(t *testing.T) {
		m, moved := diff([]byte{0, 10, 100}, []byte{0, 30, 50}, 16)
		if m != 70.0/3 || moved != 2 {
			t.Errorf("diff = %v, %d", m, moved)
		}
	})
}

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target string
		frames int
	}{{"/", 32}, {"/?start=90&frames=6", 6}, {"/?frames=1", 1}} {
		t.Run(tc.target, func(t *testing.T) {
			var got result
			fntest.DoJSON(t, h, http.MethodGet, tc.target, nil, &got)
			if got.Frames != tc.frames || len(got.MeanDiff) != tc.frames-1 {
				t.Errorf("got %+v", got)
			}
			if tc.frames > 2 && got.MotionFrames == 0 {
				t.Errorf("no motion detected in %d frames of moving balls", tc.frames)
			}
		})
	}
	fntest.CheckDeterministic(t, h, "/", "/?start=10&frames=20")
	fntest.CheckBad(t, h, http.MethodGet, "/?frames=0", "/?start=95&frames=2", "/?frames=97", "/?min_pixels=-1")
}
