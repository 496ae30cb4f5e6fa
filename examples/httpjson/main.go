// Command httpjson is a thaw function serving a small JSON API: see
// Handler. `thaw new NAME --template http-json` starts from a copy of it.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
