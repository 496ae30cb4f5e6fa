// Command compression is a thaw function: the SeBS compression / FunctionBench gzip port: gzip a generated ~1 MiB buffer.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
