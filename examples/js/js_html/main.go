// Command js_html is handler.js as a thaw function, built as `thaw build`
// builds a JavaScript function: the script embedded, loaded (its top level
// run) at initialisation by the runtime in sdk/js. `thaw new --lang js`
// copies handler.js only.
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
