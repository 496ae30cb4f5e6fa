//go:build cgo

package wasmtime

import (
	"context"
	"testing"
)

// zero is a divisor the compiler cannot see is zero.
var zero = 0

// wasmtime installs its own SIGSEGV/SIGILL/SIGFPE handlers to turn faults
// in guest code into traps. A fault in Go code must still reach Go's
// handler and become a recoverable panic, on the goroutine that faulted,
// after guest code has trapped on this thread or another.
func TestGoFaultsStillPanic(t *testing.T) {
	inst := boot(t, compile(t, newEngine(t), "examples/faulty"), cfg)
	_, _ = inst.Invoke(context.Background(), get("/trap", "")) // a trap in guest code
	for range 3 {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("a nil dereference did not panic")
				}
			}()
			var p *struct{ n [1 << 10]int }
			p.n[7]++
		}()
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("an integer division by zero did not panic")
				}
			}()
			_ = 1 / zero
		}()
	}
}
