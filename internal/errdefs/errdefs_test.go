package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestCategory(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("deploy f: %w", ErrInvalid), "invalid"},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", ErrGuest)), "guest_fault"},
		{ErrOverloaded, "overloaded"},
		{errors.New("plain"), "internal"},
		{nil, "internal"},
	} {
		if got := Category(c.err); got != c.want {
			t.Errorf("Category(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
