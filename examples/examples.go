// Package examples carries the example functions that `thaw new` copies as
// templates, so the thaw binary holds them and a new function starts from
// code that the repository builds and tests like any other example.
//
// Each Go example is package main in its own directory: main.go registers
// the handler with the SDK, handler.go holds it (plain net/http) and
// handler_test.go tests it natively. A JavaScript example is a directory
// under js holding handler.js and handler.test.mjs (Node's test runner;
// js/package.json makes the scripts ES modules for Node), tested in the
// runtime thaw links by js/examples_test.go; thaw build (and testwasm)
// builds it with the one generated Go program of internal/build. The other
// examples (suite, warmup, initheavy, ...) are the platform's benchmarks
// and are not embedded.
package examples

import "embed"

// Templates holds the directories hello and httpjson, and the JavaScript
// functions js/hello, js/js_json and js/js_html (handler.js and its test
// each; js_json and js_html are also in the benchmark suite).
//
//go:embed hello httpjson js/hello js/js_json js/js_html
var Templates embed.FS
