package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// reactor assembles a module that exports memory, _initialize, and one
// function of the given signature for each name in sigs (a body that
// returns zeros).
func reactor(sigs map[string][2][]byte) []byte {
	type fn struct {
		name    string
		params  []byte
		results []byte
	}
	fns := []fn{{"_initialize", nil, nil}}
	for _, name := range []string{"thaw_alloc", "thaw_handle", "thaw_on_restore"} {
		if s, ok := sigs[name]; ok {
			fns = append(fns, fn{name, s[0], s[1]})
		}
	}
	section := func(id byte, body []byte) []byte {
		return append([]byte{id, byte(len(body))}, body...)
	}
	var types, funcs, exports, code []byte
	for i, f := range fns {
		types = append(types, 0x60, byte(len(f.params)))
		types = append(types, f.params...)
		types = append(types, byte(len(f.results)))
		types = append(types, f.results...)
		funcs = append(funcs, byte(i))
		exports = append(exports, byte(len(f.name)))
		exports = append(exports, f.name...)
		exports = append(exports, 0, byte(i))
		body := []byte{0} // no locals
		for _, r := range f.results {
			body = append(body, map[byte]byte{i32: 0x41, i64: 0x42}[r], 0) // iNN.const 0
		}
		body = append(body, 0x0b)
		code = append(code, byte(len(body)))
		code = append(code, body...)
	}
	exports = append(exports, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0)
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = append(m, section(1, append([]byte{byte(len(fns))}, types...))...)
	m = append(m, section(3, append([]byte{byte(len(fns))}, funcs...))...)
	m = append(m, section(5, []byte{1, 0, 1})...)
	m = append(m, section(7, append([]byte{byte(len(fns) + 1)}, exports...))...)
	m = append(m, section(10, append([]byte{byte(len(fns))}, code...))...)
	return m
}

// Prepare holds the exports an engine calls to their signatures
// (Signatures), and accepts a module that has them right.
func TestPrepareSignatures(t *testing.T) {
	good := map[string][2][]byte{
		"thaw_alloc":  {{i32}, {i32}},
		"thaw_handle": {{i32, i32}, {i64}},
	}
	if _, err := Prepare(reactor(good)); err != nil {
		t.Fatalf("a module of the ABI's signatures: %v", err)
	}
	withHook := map[string][2][]byte{"thaw_on_restore": {nil, nil}}
	for k, v := range good {
		withHook[k] = v
	}
	if _, err := Prepare(reactor(withHook)); err != nil {
		t.Fatalf("a module with a restore hook: %v", err)
	}
	for name, sig := range map[string][2][]byte{
		"thaw_alloc":      {{i64}, {i32}},
		"thaw_handle":     {{i32, i32}, {i32}},
		"thaw_on_restore": {{i32}, nil},
	} {
		bad := map[string][2][]byte{name: sig}
		for k, v := range good {
			if k != name {
				bad[k] = v
			}
		}
		if _, err := Prepare(reactor(bad)); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s of the wrong signature: %v, want ErrInvalid", name, err)
		}
	}
}

// A deadline ends a sleep that no context would, and a call with neither
// a context that can end nor a deadline does not sleep at all.
func TestSleeperDeadline(t *testing.T) {
	var s Sleeper
	end := s.During(context.Background(), time.Now().Add(10*time.Millisecond))
	sleepEnds(t, &s, "a sleep of an hour ran 20 s past a 10 ms deadline")
	end()
	end = s.During(context.Background(), time.Time{})
	defer end()
	sleepEnds(t, &s, "a call that can never be cancelled and has no deadline slept")
}

// sleepEnds fails the test with msg unless an hour's sleep on s returns
// within 20 s.
func sleepEnds(t *testing.T, s *Sleeper, msg string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Sleep(int64(time.Hour))
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal(msg)
	}
}

// DeadlineTime is the earlier of the context's deadline and the call's
// timeout (the instance's, unless the call names one), zero with neither.
func TestDeadlineTime(t *testing.T) {
	cfg := InstanceConfig{Timeout: time.Hour}
	if d := DeadlineTime(context.Background(), InstanceConfig{}, 0); !d.IsZero() {
		t.Fatalf("no timeouts: deadline %v, want none", d)
	}
	before := time.Now()
	if d := DeadlineTime(context.Background(), cfg, 0); d.Before(before.Add(time.Hour)) || d.After(time.Now().Add(time.Hour)) {
		t.Fatalf("instance timeout of an hour: deadline %v from %v", d, before)
	}
	if d := DeadlineTime(context.Background(), cfg, time.Minute); d.After(time.Now().Add(time.Minute)) {
		t.Fatalf("call timeout of a minute: deadline %v, beyond a minute from now", d)
	}
	soon := time.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), soon)
	defer cancel()
	if d := DeadlineTime(ctx, cfg, 0); !d.Equal(soon) {
		t.Fatalf("context deadline %v before the timeout: got %v", soon, d)
	}
}
