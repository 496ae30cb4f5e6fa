//go:build !cgo

package bare

import (
	"fmt"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
)

// Available reports whether this build has the bare embedding: it needs
// cgo.
const Available = false

// Engine is absent from this build.
type Engine struct{}

// New fails: the bare embedding needs cgo.
func New() (*Engine, error) {
	return nil, fmt.Errorf("the bare wasmtime embedding needs cgo (built with CGO_ENABLED=0?): %w", errdefs.ErrInvalid)
}

// Close does nothing.
func (e *Engine) Close() {}

// Module is absent from this build.
type Module struct{}

// Compile is never reached: New fails.
func (e *Engine) Compile([]byte) (*Module, error) { return nil, errdefs.ErrInvalid }

// Close does nothing.
func (m *Module) Close() {}

// Instance is absent from this build.
type Instance struct{}

// Boot is never reached: New fails.
func (m *Module) Boot() (*Instance, time.Duration, time.Duration, error) {
	return nil, 0, 0, errdefs.ErrInvalid
}

// Invoke is never reached: New fails.
func (i *Instance) Invoke(*abi.Request) (*abi.Response, error) { return nil, errdefs.ErrInvalid }

// Close does nothing.
func (i *Instance) Close() {}
