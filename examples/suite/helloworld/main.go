// Command helloworld is a thaw function: the FunctionBench/vHive helloworld, the smallest possible cold start.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
