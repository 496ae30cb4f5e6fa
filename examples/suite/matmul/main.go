// Command matmul is a thaw function: the FunctionBench matmul port: multiply two generated n x n float64 matrices.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
