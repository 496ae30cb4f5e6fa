package policy

import (
	"errors"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// FuzzUnmarshalState: the state part of policy.json, for every policy, is
// an ErrCorrupt error that leaves the policy working, or a state the policy
// runs on without panicking and marshals again.
func FuzzUnmarshalState(f *testing.F) {
	p := newPronghorn(DefaultParams(), 7)
	for i := 1; i <= 5; i++ {
		p.Observe(i, time.Duration(i)*time.Millisecond)
	}
	good, err := p.MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"v":1,"ema_ms":[-1],"rng":""}`))
	f.Add([]byte(`{"v":1,"ema_ms":[1e308,1e308],"rng":"cGNnOgAAAAAAAAABAAAAAAAAAAI="}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, spec := range []string{"init", "fixed:3", "pronghorn", "pronghorn:window=2,pool=2"} {
			pol, err := Parse(spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := pol.UnmarshalState(b); err != nil && !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("%s: error %v is not ErrCorrupt", spec, err)
			}
			// Accepted or not, the policy keeps working.
			pool := []Candidate{{ID: "a"}, {ID: "b", Request: 2}, {ID: "c", Request: MaxTracked + 5}}
			for req := 1; req <= 4; req++ {
				_ = pol.Choose(pool)
				_ = pol.CheckpointAt(req)
				pol.Observe(req, time.Millisecond)
				pol.Observe(MaxTracked+req, time.Hour)
			}
			if keep := pol.Prune(pool, 2); len(keep) > 2 {
				t.Fatalf("%s: kept %d of capacity 2", spec, len(keep))
			}
			if _, err := pol.MarshalState(); err != nil {
				t.Fatalf("%s: %v", spec, err)
			}
		}
	})
}
