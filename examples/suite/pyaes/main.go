// Command pyaes is a thaw function: the FunctionBench pyaes port, AES-CTR over a generated message with the CTR loop in Go.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
