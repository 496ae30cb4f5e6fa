//go:build !cgo

package faultguard

import "time"

// Available reports whether this build has the guard thread (it needs cgo).
const Available = false

// Guard, in a build without cgo, does nothing: there is no thread to
// answer faults when every pager has died.
type Guard struct{}

// New returns a guard that does nothing.
func New(Words, time.Duration) (*Guard, error) { return &Guard{}, nil }

// Add does nothing.
func (*Guard) Add(uint64, int, uintptr, uint64, []byte) error { return nil }

// Remove does nothing.
func (*Guard) Remove(uint64) {}

// SetPagers does nothing.
func (*Guard) SetPagers(...int) error { return nil }

// Stats returns zero.
func (*Guard) Stats() Stats { return Stats{} }

// Close does nothing.
func (*Guard) Close() {}

// Mapping, in a build without cgo, guards nothing: a mapped file that is
// truncated still ends the process with SIGBUS.
type Mapping struct{}

// GuardMapping returns a Mapping that does nothing.
func GuardMapping(uintptr, uint64) (*Mapping, error) { return &Mapping{}, nil }

// Holes returns zero.
func (*Mapping) Holes() uint64 { return 0 }

// Release does nothing.
func (*Mapping) Release() {}
