package policy

import (
	"errors"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		name string // canonical Name; "" means a parse error
	}{
		{"init", "init"},
		{" init ", "init"},
		{"fixed:1", "fixed:1"},
		{"fixed:42", "fixed:42"},
		{"pronghorn", "pronghorn"},
		{"pronghorn:window=4", "pronghorn:window=4"},
		{"pronghorn:window=20", "pronghorn"},
		{"pronghorn:temp=0.5,window=4,pool=6", "pronghorn:window=4,pool=6,temp=0.5"},
		{"pronghorn:eps=1,top=0.5,rest=0", "pronghorn:eps=1,top=0.5,rest=0"},
		{"", ""},
		{"cold", ""},
		{"Init", ""},
		{"init:1", ""},
		{"fixed", ""},
		{"fixed:", ""},
		{"fixed:0", ""},
		{"fixed:-3", ""},
		{"fixed:x", ""},
		{"fixed:1.5", ""},
		{"fixed:100000", ""},
		{"pronghorn:", ""},
		{"pronghorn:window", ""},
		{"pronghorn:window=", ""},
		{"pronghorn:window=0", ""},
		{"pronghorn:window=2000", ""},
		{"pronghorn:pool=0", ""},
		{"pronghorn:pool=65", ""},
		{"pronghorn:temp=0", ""},
		{"pronghorn:temp=NaN", ""},
		{"pronghorn:temp=-1", ""},
		{"pronghorn:eps=0", ""},
		{"pronghorn:eps=1.5", ""},
		{"pronghorn:top=0", ""},
		{"pronghorn:rest=2", ""},
		{"pronghorn:window=4,window=5", ""},
		{"pronghorn:speed=9", ""},
		{"pronghorn:window=4,", ""},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			p, err := Parse(tc.spec, 1)
			if tc.name == "" {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("Parse(%q) = %v, %v; want an ErrInvalid error", tc.spec, p, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.spec, err)
			}
			if got := p.Name(); got != tc.name {
				t.Errorf("Name() = %q, want %q", got, tc.name)
			}
			// The canonical name parses back to the same policy.
			q, err := Parse(p.Name(), 1)
			if err != nil || q.Name() != p.Name() {
				t.Errorf("Parse(Name()) = %v, %v", q, err)
			}
		})
	}
}

// FuzzParse checks that any spec either fails with ErrInvalid or yields a
// policy whose canonical name parses to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"init", "fixed:3", "pronghorn", "pronghorn:window=4,temp=0.1", "pronghorn:x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := Parse(spec, 7)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("Parse(%q): %v is not ErrInvalid", spec, err)
			}
			return
		}
		q, err := Parse(p.Name(), 7)
		if err != nil || q.Name() != p.Name() {
			t.Fatalf("Parse(%q).Name() = %q does not round-trip: %v", spec, p.Name(), err)
		}
	})
}
