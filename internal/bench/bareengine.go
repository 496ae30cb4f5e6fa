package bench

import (
	"context"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/bench/bare"
)

// Bare is the engine name of a bare wasmtime embedding of the function
// (internal/bench/bare): wasmtime-go with its own WASI, calling
// thaw_alloc and thaw_handle directly. Builds without cgo lack it.
const Bare = "bare"

// bareContestant is a function on the bare wasmtime embedding.
type bareContestant struct {
	mod  *bare.Module
	req  *abi.Request
	inst *bare.Instance
}

// newBareContestant compiles fn, boots its warm instance and serves the
// first request, whose response it returns with the compilation's time.
func newBareContestant(e *bare.Engine, fn EngineFunction) (contestant, *abi.Response, float64, error) {
	t0 := time.Now()
	mod, err := e.Compile(fn.Wasm)
	if err != nil {
		return nil, nil, 0, err
	}
	compile := ms(time.Since(t0))
	c := &bareContestant{mod: mod, req: &fn.Request}
	if c.inst, _, _, err = mod.Boot(); err != nil {
		mod.Close()
		return nil, nil, 0, err
	}
	resp, err := c.inst.Invoke(c.req)
	if err == nil {
		err = checkStatus(resp)
	}
	if err != nil {
		c.close(context.Background())
		return nil, nil, 0, err
	}
	return c, resp, compile, nil
}

func (c *bareContestant) warm(context.Context) (time.Duration, error) {
	t0 := time.Now()
	_, err := c.inst.Invoke(c.req)
	return time.Since(t0), err
}

func (c *bareContestant) cold(context.Context) (coldSample, error) {
	t0 := time.Now()
	inst, instantiate, init, err := c.mod.Boot()
	if err != nil {
		return coldSample{}, err
	}
	defer inst.Close()
	t1 := time.Now()
	_, err = inst.Invoke(c.req)
	t2 := time.Now()
	return coldSample{total: t2.Sub(t0), boot: t1.Sub(t0), instantiate: instantiate, init: init, first: t2.Sub(t1)}, err
}

func (c *bareContestant) close(context.Context) {
	if c.inst != nil {
		c.inst.Close()
	}
	c.mod.Close()
}
