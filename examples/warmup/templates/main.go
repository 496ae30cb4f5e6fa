// Command templates is a thaw warm-up workload: it compiles each of 200 HTML templates on first use, so latency falls as more are compiled.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
