// Command image_rotate is a thaw function: the FunctionBench image_rotate port: decode an image, rotate it 90°, encode it again.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
