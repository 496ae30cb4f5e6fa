// Command hello is the smallest thaw function: it greets ?name= and echoes
// the method and path, so tests can check what reached the guest. `thaw
// new NAME` starts from a copy of it.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
