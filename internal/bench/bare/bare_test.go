//go:build cgo

package bare

import (
	"errors"
	"net/http"
	"testing"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// TestInvoke boots hello on the bare embedding and serves requests
// through thaw's ABI: the answers are hello's, warm and on a second
// instance.
func TestInvoke(t *testing.T) {
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m, err := e.Compile(testwasm.Build(t, "examples/hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := range 2 {
		inst, instantiate, init, err := m.Boot()
		if err != nil {
			t.Fatal(err)
		}
		if instantiate <= 0 || init <= 0 {
			t.Errorf("instance %d: instantiate %v, init %v", i, instantiate, init)
		}
		for _, name := range []string{"thaw", "again"} {
			resp, err := inst.Invoke(&abi.Request{Method: http.MethodGet, Path: "/x", RawQuery: "name=" + name, Header: http.Header{}})
			if want := "hello, " + name + " (GET /x)\n"; err != nil || resp.Status != 200 || string(resp.Body) != want {
				t.Errorf("instance %d: %+v, %v; want 200 %q", i, resp, err, want)
			}
		}
		inst.Close()
	}
}

// TestRejects refuses what is not a thaw reactor as invalid input: bytes
// that are not wasm, and a valid module without the ABI's exports.
func TestRejects(t *testing.T) {
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Compile([]byte("not wasm")); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("not wasm: %v, want ErrInvalid", err)
	}
	m, err := e.Compile([]byte("\x00asm\x01\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, _, _, err := m.Boot(); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("empty module: %v, want ErrInvalid", err)
	}
}
