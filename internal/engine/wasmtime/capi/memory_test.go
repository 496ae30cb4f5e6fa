//go:build cgo

package capi

import (
	"bytes"
	"testing"
)

// Copy copies as the built-in copy does: the shorter length, from the
// start of each slice, and nothing for an empty one.
func TestCopy(t *testing.T) {
	for _, c := range []struct {
		dst, src, want string
		n              int
	}{
		{"....", "ab", "ab..", 2},
		{"..", "abcd", "ab", 2},
		{"....", "", "....", 0},
		{"", "abcd", "", 0},
	} {
		dst := []byte(c.dst)
		if n := Copy(dst, []byte(c.src)); n != c.n || !bytes.Equal(dst, []byte(c.want)) {
			t.Errorf("Copy(%q, %q) = %d, %q; want %d, %q", c.dst, c.src, n, dst, c.n, c.want)
		}
	}
}
