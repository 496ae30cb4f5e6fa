// Command flat is a thaw warm-up workload: the control, whose every request costs the same (no caches, no lazy state).
package main

import thaw "github.com/thaw-run/thaw/sdk/go"

func init() { thaw.Handle(Handler()) }

func main() {}
