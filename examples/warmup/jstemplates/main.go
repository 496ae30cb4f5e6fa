// Command jstemplates is a thaw warm-up workload in JavaScript: handler.js
// (page templates compiled on first use) run by sdk/js, built as
// `thaw build` builds a JavaScript function.
package main

import (
	_ "embed"

	thaw "github.com/thaw-run/thaw/sdk/go"
	thawjs "github.com/thaw-run/thaw/sdk/js"
)

//go:embed handler.js
var script string

func init() { thaw.Handle(thawjs.MustLoad("handler.js", script)) }

func main() {}
