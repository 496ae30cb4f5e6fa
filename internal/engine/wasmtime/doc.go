// Package wasmtime runs thaw functions on wasmtime (Cranelift machine code,
// through wasmtime-go and cgo), beside the pure-Go wazero engine.
//
// It keeps thaw's contract with its engines: every instance's linear memory
// is an engine.Region that thaw mapped (package capi installs the host
// memory creator that hands it to wasmtime), deadlines and cancellation
// stop any guest (epoch interruption: a ticker advances the engine's epoch
// and at every tick a callback of package capi checks the call's
// cancellation and its deadline in ticks), the WASI calls whose behaviour
// thaw decides are Go host functions (the continuing clock, sleeps that end at the
// call's deadline, fresh randomness, stderr kept for fault reports), and
// compiled code is cached on disk.
//
// The engine needs cgo. Built without it the package is empty and thaw
// runs on wazero alone.
package wasmtime
