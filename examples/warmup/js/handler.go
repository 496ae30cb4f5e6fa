package main

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/dop251/goja"

	"github.com/thaw-run/thaw/examples/internal/fn"
)

// result is the js function's JSON answer.
type result struct {
	Inputs   int   `json:"inputs"`
	Seed     int   `json:"seed"`
	Checksum int64 `json:"checksum"`
}

// runtime is the JavaScript engine and what it has compiled so far.
type runtime struct {
	mu       sync.Mutex
	vm       *goja.Runtime
	mods     []module
	programs map[string]*goja.Program // compiled on first use, then reused
	handle   goja.Callable
}

// Handler runs a JavaScript program in goja: each request sums the
// program's 16 module functions over ?n= inputs (default 8) drawn from
// ?seed= (default 1). The answer depends only on the request; the cost
// does not. The first request compiles the driver and every module
// (compile on first use); later requests get cheaper as module functions
// turn hot one after another and their results are served from the
// JavaScript memo table, the last at request 182. GET /stats shows the
// program's cache state.
func Handler() http.Handler {
	rt := &runtime{vm: goja.New(), mods: modules(), programs: make(map[string]*goja.Program)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fn.Methods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if err := rt.load(); err != nil {
			fn.Error(w, http.StatusInternalServerError, "%v", err)
			return
		}
		if r.URL.Path == "/stats" {
			v, err := rt.vm.RunString("stats()")
			if err != nil {
				fn.Error(w, http.StatusInternalServerError, "stats: %v", err)
				return
			}
			fn.JSON(w, v.Export())
			return
		}
		n, err := fn.Int(r, "n", 8, 1, 1024)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		seed, err := fn.Int(r, "seed", 1, 0, 1<<31)
		if err != nil {
			fn.Error(w, http.StatusBadRequest, "%v", err)
			return
		}
		in := inputs(n, seed)
		arr := make([]any, len(in))
		for i, x := range in {
			arr[i] = int64(x)
		}
		v, err := rt.handle(goja.Undefined(), rt.vm.ToValue(arr))
		if err != nil {
			fn.Error(w, http.StatusInternalServerError, "handle: %v", err)
			return
		}
		fn.JSON(w, result{Inputs: n, Seed: seed, Checksum: v.ToInteger()})
	})
}

// load compiles and runs the driver and the modules not yet loaded.
func (rt *runtime) load() error {
	if rt.handle != nil {
		return nil
	}
	if err := rt.run("driver.js", driver); err != nil {
		return err
	}
	for i, md := range rt.mods {
		if err := rt.run(fmt.Sprintf("mod%d.js", i), md.source(i)); err != nil {
			return err
		}
	}
	h, ok := goja.AssertFunction(rt.vm.Get("handle"))
	if !ok {
		return fmt.Errorf("driver defines no handle function")
	}
	rt.handle = h
	return nil
}

// run compiles src on first use and runs it.
func (rt *runtime) run(name, src string) error {
	p := rt.programs[name]
	if p == nil {
		var err error
		if p, err = goja.Compile(name, src, false); err != nil {
			return fmt.Errorf("compile %s: %w", name, err)
		}
		rt.programs[name] = p
	}
	if _, err := rt.vm.RunProgram(p); err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	return nil
}
