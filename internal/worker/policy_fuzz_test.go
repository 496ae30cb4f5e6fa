package worker

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/policy"
)

// FuzzDecodePolicyRecord: any policy.json is an ErrCorrupt error or a pool
// of distinct single-segment snapshot ids (never a path out of the
// function's snapshot directory) with a state every policy either refuses
// or can run on.
func FuzzDecodePolicyRecord(f *testing.F) {
	good, _ := json.Marshal(policyRecord{Extra: []string{"20260101T000000-0123456789ab"}, State: json.RawMessage(`{"v":1,"ema_ms":[1.5,2],"rng":"cGNnOgAAAAAAAAABAAAAAAAAAAI="}`)})
	f.Add(good)
	f.Add([]byte(`{"extra":["../other/20260101T000000-0123456789ab"]}`))
	f.Add([]byte(`{"extra":["a","a"]}`))
	f.Add([]byte(`{"extra":[".."],"state":{}}`))
	f.Add([]byte(`{"state":{"v":1,"ema_ms":[-1]}}`))
	f.Add([]byte(`{"state":{"v":1,"ema_ms":[1e309]}}`))
	f.Add([]byte(`{"extra":[` + strings.Repeat(`"x",`, 100) + `"y"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodePolicyRecord(b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, id := range rec.Extra {
			if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") || seen[id] {
				t.Fatalf("accepted pool id %q", id)
			}
			seen[id] = true
		}
		if len(rec.Extra) > maxPoolIDs {
			t.Fatalf("accepted %d pool ids", len(rec.Extra))
		}
		for _, spec := range []string{"init", "fixed:3", "pronghorn"} {
			p, err := policy.Parse(spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.State) == 0 || p.UnmarshalState(rec.State) != nil {
				continue
			}
			pool := []policy.Candidate{{ID: "a", Request: 0}, {ID: "b", Request: 3}, {ID: "c", Request: 1 << 30}}
			_ = p.Choose(pool)
			_ = p.CheckpointAt(1)
			p.Observe(2, 5)
			_ = p.Prune(pool, 2)
			if _, err := p.MarshalState(); err != nil {
				t.Fatalf("%s: state accepted but not marshalled: %v", spec, err)
			}
		}
	})
}
