// Command json_serdes is a thaw function: the FunctionBench json_serdes port: decode and re-encode a ~100 KB JSON document.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
