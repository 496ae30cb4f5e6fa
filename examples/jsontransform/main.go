// Command jsontransform is a thaw function that transforms a JSON document:
// see Handler.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
