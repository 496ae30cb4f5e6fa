// Package integration holds thaw's end-to-end tests: they build the thaw
// binary and the example functions, run `thaw serve` on a free loopback
// port, and drive it over HTTP and through the CLI binary. The package has
// no non-test code.
package integration
