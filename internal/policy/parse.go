package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// Parse builds the policy a spec string names:
//
//	init                      restore the initialisation snapshot, never checkpoint
//	fixed:N                   checkpoint after request N (N >= 1), restore it
//	pronghorn                 Pronghorn's request-centric policy, paper defaults
//	pronghorn:key=value,...   the same with parameters (window, pool, temp,
//	                          eps, top, rest, bonus, smooth; see docs/policy.md)
//
// seed makes every random choice of the policy reproducible. A malformed
// spec is an error wrapping errdefs.ErrInvalid.
func Parse(spec string, seed uint64) (Policy, error) {
	spec = strings.TrimSpace(spec)
	name, args, hasArgs := strings.Cut(spec, ":")
	switch name {
	case "init":
		if hasArgs {
			return nil, invalid(spec, "init takes no parameters")
		}
		return initPolicy{}, nil
	case "fixed":
		if !hasArgs {
			return nil, invalid(spec, "fixed needs a request number, e.g. fixed:5")
		}
		n, err := strconv.Atoi(args)
		if err != nil || n < 1 {
			return nil, invalid(spec, "fixed:N needs an integer N >= 1")
		}
		if n > MaxTracked {
			return nil, invalid(spec, fmt.Sprintf("fixed:N needs N <= %d", MaxTracked))
		}
		return fixed{n: n}, nil
	case "pronghorn":
		prm := DefaultParams()
		if hasArgs {
			if err := prm.parse(args); err != nil {
				return nil, invalid(spec, err.Error())
			}
		}
		return newPronghorn(prm, seed), nil
	case "":
		return nil, invalid(spec, "empty policy; want init, fixed:N or pronghorn[:key=value,...]")
	default:
		return nil, invalid(spec, "unknown policy; want init, fixed:N or pronghorn[:key=value,...]")
	}
}

func invalid(spec, why string) error {
	return fmt.Errorf("policy %q: %s: %w", spec, why, errdefs.ErrInvalid)
}

// parse sets the parameters named in a "key=value,..." list.
func (p *Params) parse(args string) error {
	if args == "" {
		return fmt.Errorf("empty parameter list after ':'")
	}
	seen := map[string]bool{}
	for kv := range strings.SplitSeq(args, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return fmt.Errorf("parameter %q is not key=value", kv)
		}
		if seen[k] {
			return fmt.Errorf("parameter %q given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "window":
			p.Window, err = intIn(k, v, 1, MaxTracked)
		case "pool":
			p.Pool, err = intIn(k, v, 1, 64)
		case "temp":
			p.Temp, err = floatIn(k, v, 1e-3, 1e3, true)
		case "eps":
			p.Eps, err = floatIn(k, v, 0, 1, false)
		case "top":
			p.Top, err = floatIn(k, v, 0, 1, false)
		case "rest":
			p.Rest, err = floatIn(k, v, 0, 1, true)
		case "bonus":
			p.Bonus, err = floatIn(k, v, 0, 10, true)
		case "smooth":
			p.Smooth, err = intIn(k, v, 0, 64)
		default:
			return fmt.Errorf("unknown parameter %q (want window, pool, temp, eps, top, rest, bonus, smooth)", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func intIn(k, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%s: want an integer in %d..%d", k, v, lo, hi)
	}
	return n, nil
}

// floatIn parses v as a float in (lo, hi], or [lo, hi] when loIncl.
func floatIn(k, v string, lo, hi float64, loIncl bool) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	ok := err == nil && !math.IsNaN(f) && f <= hi && (f > lo || loIncl && f == lo)
	if !ok {
		open := "("
		if loIncl {
			open = "["
		}
		return 0, fmt.Errorf("%s=%s: want a number in %s%g, %g]", k, v, open, lo, hi)
	}
	return f, nil
}
