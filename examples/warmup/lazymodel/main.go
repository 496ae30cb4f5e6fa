// Command lazymodel is a thaw warm-up workload: it generates its 32 MB model on first use, then serves cheaply.
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
