// Package examples carries the example functions that `thaw new` copies as
// templates, so the thaw binary holds them and a new function starts from
// code that the repository builds and tests like any other example.
//
// Each example is package main in its own directory: main.go registers the
// handler with the SDK, handler.go holds it (plain net/http) and
// handler_test.go tests it natively. The other examples (suite, warmup,
// initheavy, ...) are the platform's benchmarks and are not embedded.
package examples

import "embed"

// Templates holds the directories hello and httpjson.
//
//go:embed hello httpjson
var Templates embed.FS
