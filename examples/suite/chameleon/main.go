// Command chameleon is a thaw function: the FunctionBench chameleon port, an HTML table rendered with html/template.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
